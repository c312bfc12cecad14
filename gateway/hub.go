package gateway

import (
	"context"
	"sync"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout"
)

// The in-process API. Every send goes through the broker, the same path a
// backend service's PUBLISH takes, so that it reaches the target's sockets
// on every replica. Counts are this replica's.

// SendToUser writes payload as one text frame to every socket of userID.
func (s *Server) SendToUser(ctx context.Context, userID string, payload []byte) error {
	return s.broker.Publish(ctx, fanout.User(userID), payload)
}

// SendToSocket writes payload to the socket with this id.
func (s *Server) SendToSocket(ctx context.Context, socketID string, payload []byte) error {
	return s.broker.Publish(ctx, fanout.Socket(socketID), payload)
}

// Broadcast writes payload to every socket.
func (s *Server) Broadcast(ctx context.Context, payload []byte) error {
	return s.broker.Publish(ctx, fanout.All(), payload)
}

// BroadcastExcept writes payload to every socket except userID's.
func (s *Server) BroadcastExcept(ctx context.Context, userID string, payload []byte) error {
	return s.broker.Publish(ctx, fanout.AllExcept(userID), payload)
}

// DisconnectUser closes every socket of userID with 4000 on every replica.
func (s *Server) DisconnectUser(ctx context.Context, userID, reason string) error {
	return s.broker.PublishControl(ctx, fanout.Control{Op: "disconnect", UserID: userID, Reason: reason})
}

// Sockets returns how many sockets this replica holds.
func (s *Server) Sockets() int { return int(s.reg.total.Load()) }

// Users returns how many users have at least one socket on this replica.
func (s *Server) Users() int { return int(s.reg.nusers.Load()) }

// UserSockets describes userID's sockets on this replica.
func (s *Server) UserSockets(userID string) []SocketInfo {
	conns := s.reg.appendUser(nil, userID)
	infos := make([]SocketInfo, len(conns))
	for i, c := range conns {
		infos[i] = c.info()
	}
	return infos
}

// delivery is the Server's fanout.Handler: it frames each message once and
// queues the same bytes to every target socket.
type delivery struct {
	s    *Server
	pool sync.Pool // *[]*Conn scratch for target lists
}

func (d *delivery) Deliver(to fanout.Target, payload []byte) {
	frame := textFrame(payload)
	switch to.Kind {
	case fanout.ToUser:
		bp := d.scratch()
		targets := d.s.reg.appendUser((*bp)[:0], to.ID)
		for _, c := range targets {
			c.enqueue(frame)
		}
		d.release(bp, targets)
		d.s.metrics.delivered.Add(float64(len(targets)))
	case fanout.ToSocket:
		if c := d.s.reg.socket(to.ID); c != nil {
			c.enqueue(frame)
			d.s.metrics.delivered.Inc()
		}
	case fanout.ToAll:
		d.all(frame, to.ID)
	}
}

// all queues frame to every socket, skipping user except when it is set.
func (d *delivery) all(frame []byte, except string) {
	bp := d.scratch()
	n := 0
	*bp = d.s.reg.each((*bp)[:0], func(c *Conn) {
		if except != "" && c.user == except {
			return
		}
		c.enqueue(frame)
		n++
	})
	d.release(bp, *bp)
	d.s.metrics.delivered.Add(float64(n))
}

func (d *delivery) Control(c fanout.Control) {
	if c.Op != "disconnect" {
		d.s.log.Warn("unknown control op", zap.String("op", c.Op))
		return
	}
	bp := d.scratch()
	targets := d.s.reg.appendUser((*bp)[:0], c.UserID)
	for _, conn := range targets {
		conn.close(DisconnectUser, false)
	}
	d.release(bp, targets)
	d.s.log.Info("user disconnected by control command",
		zap.String("user", c.UserID), zap.String("reason", c.Reason), zap.Int("sockets", len(targets)))
}

func (d *delivery) Resync() {
	d.s.log.Info("broker restored: sending resync to every socket", zap.Int("sockets", d.s.Sockets()))
	d.all(frameResync, "")
}

var frameResync = textFrame([]byte(`{"type":"resync"}`))

func (d *delivery) scratch() *[]*Conn {
	if bp, ok := d.pool.Get().(*[]*Conn); ok {
		return bp
	}
	return new([]*Conn)
}

func (d *delivery) release(bp *[]*Conn, used []*Conn) {
	clear(used)
	*bp = used[:0]
	d.pool.Put(bp)
}
