package replay

import (
	"errors"
	"fmt"
	"time"
)

var errEmptyJTI = errors.New("replay: empty jti")

// checkArgs rejects the arguments no Store accepts. The error does not wrap
// ErrUnavailable: retrying cannot help, the caller has a bug or a bad token.
func checkArgs(jti string, ttl time.Duration) error {
	if jti == "" {
		return errEmptyJTI
	}
	if ttl <= 0 {
		return fmt.Errorf("replay: ttl %v is not positive", ttl)
	}
	return nil
}
