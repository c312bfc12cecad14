package replay

import (
	"errors"
	"fmt"
	"time"
)

var (
	errEmptyJTI = errors.New("replay: empty jti")
	errZeroTime = errors.New("replay: zero expiry or mint time")
)

// checkArgs rejects the arguments no Store accepts. The error does not wrap
// ErrUnavailable: retrying cannot help, the caller has a bug or a bad token.
func checkArgs(jti string, mintedBy, expires time.Time) error {
	if jti == "" {
		return errEmptyJTI
	}
	if expires.IsZero() || mintedBy.IsZero() {
		return errZeroTime
	}
	return nil
}

// errForgotten is what Consume returns for a token minted before the store
// started.
var errForgotten = fmt.Errorf("%w: minted before the store (re)started, which may have lost its record", ErrExpired)
