package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/presence"
)

// userCounts feeds per-user socket counts to the Presence store off the
// handshake path: the handshake and teardown queue +1 and -1, and one
// goroutine (run) applies them in order, in batches of one round trip.
type userCounts struct {
	s    *Server
	mu   sync.Mutex
	ops  []presence.Op // guarded by mu
	wake chan struct{} // capacity 1: ops were queued
}

func newUserCounts(s *Server) *userCounts {
	return &userCounts{s: s, wake: make(chan struct{}, 1)}
}

func (u *userCounts) queue(op presence.Op) {
	u.mu.Lock()
	u.ops = append(u.ops, op)
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run applies the queued ops until the core stops, then applies what is
// left (the sockets closed by the shutdown).
func (u *userCounts) run() {
	for {
		select {
		case <-u.wake:
			u.flush()
		case <-u.s.stop:
			u.flush()
			return
		}
	}
}

const userOpsBatch = 512

func (u *userCounts) flush() {
	u.mu.Lock()
	ops := u.ops
	u.ops = nil
	u.mu.Unlock()
	for len(ops) > 0 {
		batch := ops[:min(len(ops), userOpsBatch)]
		ops = ops[len(batch):]
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := u.s.cfg.Presence.Apply(ctx, u.s.cfg.NodeID, batch)
		cancel()
		if err != nil {
			// The counts drift until the replica's entry is rebuilt
			// (restart) or expires; say so.
			u.s.log.Warn("presence: per-user counts not recorded", zap.Int("ops", len(batch)), zap.Error(err))
		}
	}
}

// presenceAdmit records a socket about to be registered. With a
// cluster-wide cap it asks Presence first (one round trip) and returns
// DisconnectTooMany when the user is at the cap; a Presence error lets the
// socket in (the cap is a limit, not a security boundary).
func (s *Server) presenceAdmit(ctx context.Context, c *Conn) *Disconnect {
	if !s.cfg.UserPresence {
		return nil
	}
	if s.cfg.ClusterMaxSocketsPerUser <= 0 {
		c.counted.Store(true)
		s.users.queue(presence.Op{User: c.user, Delta: 1})
		return nil
	}
	res, err := s.cfg.Presence.Apply(ctx, s.cfg.NodeID, []presence.Op{{User: c.user, Delta: 1, Cap: s.cfg.ClusterMaxSocketsPerUser}})
	switch {
	case err != nil:
		s.log.Warn("presence: cluster-wide cap not checked", zap.String("user", c.user), zap.Error(err))
		s.users.queue(presence.Op{User: c.user, Delta: 1})
	case len(res) == 1 && res[0] < 0:
		s.log.Info("socket refused: cluster-wide per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.ClusterMaxSocketsPerUser))
		return DisconnectTooMany
	}
	c.counted.Store(true)
	return nil
}

// presenceLeft records that a socket counted by presenceAdmit is gone; it
// does so once per socket, whoever calls it.
func (s *Server) presenceLeft(c *Conn) {
	if c.counted.CompareAndSwap(true, false) {
		s.users.queue(presence.Op{User: c.user, Delta: -1})
	}
}

// CountConnections returns how many sockets user holds: across the cluster
// with UserPresence (as of the replicas' last applied changes, a few
// milliseconds behind), on this replica otherwise.
func (s *Server) CountConnections(ctx context.Context, user string) (int, error) {
	if !s.cfg.UserPresence {
		return len(s.reg.appendUser(nil, user)), nil
	}
	return s.cfg.Presence.Count(ctx, user)
}
