package replay

import (
	"context"
	"errors"
	"time"
)

// ErrUnavailable means the store could not answer; the token must be refused.
var ErrUnavailable = errors.New("replay: store unavailable")

// ErrExpired means that the token must be refused as expired: its life had
// already ended by the store's clock when Consume was called, or it was
// minted before the store last started, so that the record of its use may
// have been lost with the store's memory. It does not wrap ErrUnavailable.
var ErrExpired = errors.New("replay: token expired by the store's clock")

// ErrReused is what a step that consumes a token as part of more work (a
// Use given to fanout/inbox's combined read) returns for a token that was
// consumed before; Consume itself answers false instead.
var ErrReused = errors.New("replay: token already used")

// Store is a one-time-use register of token ids.
type Store interface {
	// Consume marks jti as used until expires, the end of the token's life
	// (its exp plus the tolerated clock skew). It returns true for the first
	// consumer and false for every later one while the record lives.
	//
	// The store's own clock decides: when expires has passed by that clock,
	// Consume records nothing and returns an error wrapping ErrExpired, so
	// a replica whose clock lags cannot revive a token whose record has
	// expired. mintedBy is the latest time the token can have been minted
	// (its iat plus the skew); a store that started after it, and so may
	// have lost the record of an earlier use (Redis restarted without its
	// data, herald restarted with the memory store), refuses the token with
	// ErrExpired too.
	Consume(ctx context.Context, jti string, mintedBy, expires time.Time) (first bool, err error)
	// Close releases the store's resources; Consume must not be called after.
	Close() error
}
