package gateway

import (
	"context"
	"math/rand/v2"
	"strconv"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway/membership"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/gateway/wscore"
)

// newMembership builds the membership when a Presence store is configured
// (nil otherwise); startMembership starts its loops.
func (s *Server) newMembership() (*membership.Membership, error) {
	if s.cfg.Presence == nil {
		return nil, nil
	}
	m := &members{s: s}
	return membership.New(membership.Config{
		Store: s.cfg.Presence, NodeID: s.cfg.NodeID, Interval: s.cfg.PresenceInterval,
		Rebalance: s.cfg.Rebalance, RebalanceMargin: s.cfg.RebalanceMargin, RebalanceRate: s.cfg.RebalanceRate,
		DrainWindow: s.cfg.DrainWindow, UserPresence: s.cfg.UserPresence,
		Broker: s.broker, Sockets: s, Shed: m, UserCounts: m,
		Logger: s.log, Registerer: s.cfg.Registerer,
	})
}

// startMembership starts the membership loops when a Presence store is
// configured. New calls it; closeCore stops them (s.stop).
func (s *Server) startMembership() {
	if s.members == nil {
		return
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.members.Run(s.stop, s.drainCh)
	}()
	if s.cfg.UserPresence {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			s.members.RunUsers(s.stop)
		}()
	}
}

// members is what the membership sees of the gateway, besides its socket
// count (Server.Sockets) and its broker.
type members struct {
	s    *Server
	next int // registry shard where the next shedding starts; owned by the membership goroutine
}

// Shed sends up to n welcomed sockets the reconnect frame, with an
// after_ms jittered below DrainWindow, and closes them with 1012: the same
// path as a graceful shutdown, for a few sockets. It returns how many.
func (m *members) Shed(n int) int {
	s := m.s
	window := max(1, s.cfg.DrainWindow.Milliseconds())
	picked := s.reg.appendWelcomed(make([]*Conn, 0, n), m.next, n)
	m.next = (m.next + 1) % registryShards
	shed := 0
	for _, c := range picked {
		frame := wscore.TextFrame([]byte(`{"type":"reconnect","after_ms":` + strconv.FormatInt(rand.Int64N(window), 10) + `}`))
		if c.ws.CloseAfter(frame, DisconnectServiceRestart) {
			shed++
		}
	}
	return shed
}

// UserCounts appends to dst the ops that rebuild this replica's per-user
// counts from the sockets counted in presence: one per socket, with its
// id, when presence records sockets (recordSockets), else one per user.
// ok is false while the replica drains.
func (m *members) UserCounts(dst []presence.Op) ([]presence.Op, bool) {
	s := m.s
	if s.draining.Load() {
		return dst, false
	}
	counts := map[string]int{}
	s.reg.each(nil, func(c *Conn) {
		if !c.now().counted() {
			return
		}
		if s.recordSockets() { // each socket with its id, for evict-oldest
			dst = append(dst, presence.Op{User: c.user, Delta: 1, Socket: c.id})
			return
		}
		counts[c.user]++
	})
	for user, n := range counts {
		dst = append(dst, presence.Op{User: user, Delta: n})
	}
	return dst, true
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
		s.members.Queue(presence.Op{User: c.user, Delta: 1})
		s.counted(c)
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
		s.members.Queue(op)
	case len(res) == 1 && res[0] < 0:
		s.log.Info("socket refused: cluster-wide per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.ClusterMaxSocketsPerUser))
		return DisconnectTooMany
	}
	for _, id := range evicted {
		// The evicted socket is uncounted already; its replica closes it.
		ctl := publish.Control{Op: publish.OpEvict, UserID: c.user, SocketID: id, Reason: DisconnectReplaced.Reason}
		if err := s.broker.PublishControl(ctx, ctl); err != nil {
			s.log.Warn("presence: evicted socket not told to close", zap.String("user", c.user), zap.String("socket_id", id), zap.Error(err))
		}
	}
	s.counted(c)
	return nil
}

// counted marks c counted in presence, its +1 queued or applied. A socket
// that ended meanwhile is uncounted at once.
func (s *Server) counted(c *Conn) {
	if _, ok := c.to(evCount); !ok {
		s.queueLeft(c)
	}
}

// recordSockets reports whether presence records each socket with its id
// and age: the evict-oldest policy of the cluster-wide cap needs them.
func (s *Server) recordSockets() bool {
	return s.cfg.ClusterMaxSocketsPerUser > 0 && s.cfg.ClusterCapPolicy == CapEvictOldest
}

// presenceLeft records that a socket counted by presenceAdmit is gone; it
// does so once per socket, whoever calls it (connEnded, through the
// state's end).
func (s *Server) presenceLeft(c *Conn) {
	if _, ok := c.to(evUncount); ok {
		s.queueLeft(c)
	}
}

// queueLeft queues the -1 of a socket that was counted.
func (s *Server) queueLeft(c *Conn) {
	op := presence.Op{User: c.user, Delta: -1}
	if s.recordSockets() {
		op.Socket = c.id
	}
	s.members.Queue(op)
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
