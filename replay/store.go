package replay

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable means the store could not answer; the token must be refused.
var ErrUnavailable = errors.New("replay: store unavailable")

// Store is a one-time-use register of token ids.
type Store interface {
	// Consume marks jti as used for ttl. It returns true for the first
	// consumer and false for every later one while the record lives.
	Consume(ctx context.Context, jti string, ttl time.Duration) (first bool, err error)
	// Close releases the store's resources; Consume must not be called after.
	Close() error
}
