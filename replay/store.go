package replay

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable means the store could not answer; the token must be refused.
var ErrUnavailable = errors.New("replay: store unavailable")

// ErrExpired means that the token's life had already ended, by the store's
// clock, when Consume was called: the token must be refused as expired. It
// does not wrap ErrUnavailable.
var ErrExpired = errors.New("replay: token expired by the store's clock")

// Store is a one-time-use register of token ids.
type Store interface {
	// Consume marks jti as used until expires, the end of the token's life
	// (its exp plus the tolerated clock skew). It returns true for the first
	// consumer and false for every later one while the record lives. The
	// store's own clock decides: when expires has passed by that clock,
	// Consume records nothing and returns an error wrapping ErrExpired, so
	// a replica whose clock lags cannot revive a token whose record has
	// expired.
	Consume(ctx context.Context, jti string, expires time.Time) (first bool, err error)
	// Close releases the store's resources; Consume must not be called after.
	Close() error
}
