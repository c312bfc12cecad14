package gateway

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/presence"
)

// userCounts feeds per-user socket counts to the Presence store off the
// handshake path: the handshake and teardown queue +1 and -1, and one
// goroutine (run) applies them in order, in batches of one round trip.
//
// When Presence may have lost this replica's counts (an Apply failed, or
// Refresh reports the entry was gone), run rebuilds them: it drops the
// queued ops, takes the registry's per-user counts, and replaces this
// replica's counts in Presence with them (Join, then +n per user). A socket
// whose +1 was queued just before and registered just after the snapshot
// is missed until it closes.
type userCounts struct {
	s      *Server
	mu     sync.Mutex
	ops    []presence.Op // guarded by mu
	resync bool          // guarded by mu
	wake   chan struct{} // capacity 1: ops were queued
}

func newUserCounts(s *Server) *userCounts {
	return &userCounts{s: s, wake: make(chan struct{}, 1)}
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
	s := u.s
	u.mu.Lock()
	ops, resync := u.ops, u.resync && !s.draining.Load() // a draining replica has left
	u.ops, u.resync = nil, false
	if resync {
		// The registry's counts replace everything queued so far.
		ops = ops[:0]
		counts := map[string]int{}
		s.reg.each(nil, func(c *Conn) {
			if !c.counted.Load() {
				return
			}
			if s.recordSockets() { // each socket with its id, for evict-oldest
				ops = append(ops, presence.Op{User: c.user, Delta: 1, Socket: c.id})
				return
			}
			counts[c.user]++
		})
		for user, n := range counts {
			ops = append(ops, presence.Op{User: user, Delta: n})
		}
	}
	u.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resync {
		if err := s.cfg.Presence.Join(ctx, s.cfg.NodeID); err != nil {
			u.failed(len(ops), err)
			return
		}
	}
	for len(ops) > 0 {
		batch := ops[:min(len(ops), userOpsBatch)]
		ops = ops[len(batch):]
		if _, err := s.cfg.Presence.Apply(ctx, s.cfg.NodeID, batch); err != nil {
			u.failed(len(batch)+len(ops), err)
			return
		}
	}
}

// failed drops n ops that could not be applied and asks for a rebuild,
// which the next flush (the next op, or the next Refresh that succeeds)
// performs.
func (u *userCounts) failed(n int, err error) {
	u.s.log.Warn("presence: per-user counts not recorded; rebuilding them once Redis answers", zap.Int("ops", n), zap.Error(err))
	u.mu.Lock()
	u.resync = true
	u.mu.Unlock()
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
	op := presence.Op{User: c.user, Delta: 1, Cap: s.cfg.ClusterMaxSocketsPerUser}
	var (
		res     []int
		evicted []string
		err     error
	)
	if s.recordSockets() {
		op.Socket = c.id
		var n int
		n, evicted, err = s.cfg.Presence.ApplyEvictOldest(ctx, s.cfg.NodeID, op)
		res = []int{n}
	} else {
		res, err = s.cfg.Presence.Apply(ctx, s.cfg.NodeID, []presence.Op{op})
	}
	switch {
	case err != nil:
		s.log.Warn("presence: cluster-wide cap not checked", zap.String("user", c.user), zap.Error(err))
		op.Cap = 0
		s.users.queue(op)
	case len(res) == 1 && res[0] < 0:
		s.log.Info("socket refused: cluster-wide per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.ClusterMaxSocketsPerUser))
		return DisconnectTooMany
	}
	for _, id := range evicted {
		// The evicted socket is uncounted already; its replica closes it.
		ctl := fanout.Control{Op: fanout.OpEvict, UserID: c.user, SocketID: id, Reason: DisconnectReplaced.Reason}
		if err := s.broker.PublishControl(ctx, ctl); err != nil {
			s.log.Warn("presence: evicted socket not told to close", zap.String("user", c.user), zap.String("socket_id", id), zap.Error(err))
		}
	}
	c.counted.Store(true)
	return nil
}

// recordSockets reports whether presence records each socket with its id
// and age: the evict-oldest policy of the cluster-wide cap needs them.
func (s *Server) recordSockets() bool {
	return s.cfg.ClusterMaxSocketsPerUser > 0 && s.cfg.ClusterCapPolicy == CapEvictOldest
}

// presenceLeft records that a socket counted by presenceAdmit is gone; it
// does so once per socket, whoever calls it.
func (s *Server) presenceLeft(c *Conn) {
	if c.counted.CompareAndSwap(true, false) {
		op := presence.Op{User: c.user, Delta: -1}
		if s.recordSockets() {
			op.Socket = c.id
		}
		s.users.queue(op)
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
