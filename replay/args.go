package replay

import (
	"errors"
	"time"
)

var (
	errEmptyJTI    = errors.New("replay: empty jti")
	errZeroExpires = errors.New("replay: zero expiry time")
)

// checkArgs rejects the arguments no Store accepts. The error does not wrap
// ErrUnavailable: retrying cannot help, the caller has a bug or a bad token.
func checkArgs(jti string, expires time.Time) error {
	if jti == "" {
		return errEmptyJTI
	}
	if expires.IsZero() {
		return errZeroExpires
	}
	return nil
}
