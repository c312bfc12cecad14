package membership

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/gateway/membership/presence"
)

// userCounts feeds per-user socket counts to the Presence store off the
// handshake path: the handshake and teardown queue +1 and -1, and one
// goroutine (run) applies them in order, in batches of one round trip.
//
// When Presence may have lost this replica's counts (an Apply failed, or
// Refresh reports the entry was gone), run rebuilds them: it drops the
// queued ops, takes the registry's per-user counts (Config.UserCounts), and
// replaces this replica's counts in Presence with them (Join, then +n per
// user). A socket whose +1 was queued just before and registered just
// after the snapshot is missed until it closes.
type userCounts struct {
	m      *Membership
	mu     sync.Mutex
	ops    []presence.Op // guarded by mu
	resync bool          // guarded by mu
	wake   chan struct{} // capacity 1: ops were queued
}

func newUserCounts(m *Membership) *userCounts {
	return &userCounts{m: m, wake: make(chan struct{}, 1)}
}

func (u *userCounts) queue(op presence.Op) {
	u.mu.Lock()
	u.ops = append(u.ops, op)
	u.mu.Unlock()
	u.signal()
}

func (u *userCounts) signal() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// requestResync asks run to rebuild this replica's counts in Presence.
func (u *userCounts) requestResync() {
	u.mu.Lock()
	u.resync = true
	u.mu.Unlock()
	u.signal()
}

// run applies the queued ops until stop is closed, then applies what is
// left (the sockets closed by the shutdown).
func (u *userCounts) run(stop <-chan struct{}) {
	for {
		select {
		case <-u.wake:
			u.flush()
		case <-stop:
			u.flush()
			return
		}
	}
}

const userOpsBatch = 512

func (u *userCounts) flush() {
	cfg := &u.m.cfg
	u.mu.Lock()
	ops, resync := u.ops, false
	if u.resync {
		// The registry's counts replace everything queued so far; a
		// draining replica has left, and rebuilds nothing.
		if rebuilt, ok := cfg.UserCounts.UserCounts(ops[:0]); ok {
			ops, resync = rebuilt, true
		}
	}
	u.ops, u.resync = nil, false
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resync {
		if err := cfg.Store.Join(ctx, cfg.NodeID); err != nil {
			u.failed(len(ops), err)
			return
		}
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), userOpsBatch)]
		ops = ops[len(batch):]
		if _, err := cfg.Store.Apply(ctx, cfg.NodeID, batch); err != nil {
			u.failed(len(batch)+len(ops), err)
			return
		}
	}
}

// failed drops n ops that could not be applied and asks for a rebuild,
// which the next flush (the next op, or the next Refresh that succeeds)
// performs.
func (u *userCounts) failed(n int, err error) {
	u.m.log.Warn("presence: per-user counts not recorded; rebuilding them once Redis answers", zap.Int("ops", n), zap.Error(err))
	u.mu.Lock()
	u.resync = true
	u.mu.Unlock()
}
