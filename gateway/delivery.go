package gateway

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway/wscore"
)

// delivery is the Server's fanout.Handler: it checks each message once,
// frames it once and queues the same bytes to every target socket.
type delivery struct {
	s        *Server
	pool     sync.Pool // *[]*Conn scratch for target lists
	messages sync.Pool // *wscore.Message, framed into and reused per delivery

	dropLogs [numDropReasons]sampledLog
}

// Why a message is not relayed: the values of
// herald_messages_dropped_total's reason label.
const (
	dropTooLarge = iota // payload over MaxRelayBytes
	dropInvalidUTF8
	dropReservedType // a top-level "type" of herald's own frames (reserved.go)
	numDropReasons
)

var dropReasons = [numDropReasons]string{"too_large", "invalid_utf8", "reserved_type"}

// The values of herald_messages_total's kind label.
var messageKinds = []string{"user", "socket", "broadcast", "control"}

// check returns why payload cannot be relayed, or -1. A message larger than
// half the queue cap could by itself push a socket that reads perfectly well
// over the cap, and text frames must be valid UTF-8 (RFC 6455 §8.1: a
// browser fails the connection otherwise); either is dropped before it
// reaches any socket. So is an application payload that would pose as one
// of herald's frames (reservedType).
func (d *delivery) check(payload []byte) int {
	switch {
	case len(payload) > d.s.maxRelay:
		return dropTooLarge
	case !utf8.Valid(payload):
		return dropInvalidUTF8
	case reservedType(payload):
		return dropReservedType
	}
	return -1
}

func (d *delivery) Deliver(to publish.Target, payload []byte) {
	at := wscore.Now()
	m := d.s.metrics
	switch to.Kind {
	case publish.ToUser:
		m.msgUser.Inc()
	case publish.ToSocket:
		m.msgSocket.Inc()
	case publish.ToAll:
		m.msgBroadcast.Inc()
	}
	if reason := d.check(payload); reason >= 0 {
		m.dropped[reason].Inc()
		d.dropLogs[reason].log(d.s.log, "message dropped",
			zap.String("reason", dropReasons[reason]), zap.Int("bytes", len(payload)), zap.Int("max_bytes", d.s.maxRelay))
		return
	}
	msg := d.message(payload, at)
	switch to.Kind {
	case publish.ToUser:
		bp := d.scratch()
		targets := d.s.reg.appendUser((*bp)[:0], to.ID)
		sync := bytes.HasPrefix(payload, syncPrefix)
		for _, c := range targets {
			d.send(c, payload, msg, sync)
		}
		d.release(bp, targets)
		m.delivered.Add(float64(len(targets)))
	case publish.ToSocket:
		if c := d.s.reg.socket(to.ID); c != nil {
			_ = c.ws.SendMessage(msg)
			m.delivered.Inc()
		}
	case publish.ToAll:
		d.all(msg, to.ID)
	}
	d.messages.Put(msg)
}

// message frames payload, received at at, into a Message from the pool:
// its buffer is reused from one message to the next.
func (d *delivery) message(payload []byte, at int64) *wscore.Message {
	msg, _ := d.messages.Get().(*wscore.Message)
	if msg == nil {
		msg = new(wscore.Message)
	}
	msg.Reset(payload, at)
	return msg
}

// send queues msg (whose payload is payload; sync: it is an inbox sync
// message) to c. A socket catching up on its inbox may hold it (inbox.go): only
// then, while that socket catches up, is the message copied into a Frame of
// its own; otherwise SendMessage writes it at once from msg's buffer when
// c can take it.
func (d *delivery) send(c *Conn, payload []byte, msg *wscore.Message, sync bool) {
	if g := c.gate.Load(); g != nil {
		if g.hold(c.id, payload, msg.Frame()) {
			return
		}
	} else if sync {
		return // a sync message is never written
	}
	_ = c.ws.SendMessage(msg)
}

// all queues msg to every socket, skipping user except when it is set. A
// broadcast is queued, not written through: the write workers write it,
// on every core, while this goroutine goes on queueing.
func (d *delivery) all(msg *wscore.Message, except string) {
	bp := d.scratch()
	n := 0
	*bp = d.s.reg.each((*bp)[:0], func(c *Conn) {
		if except != "" && c.user == except {
			return
		}
		if g := c.gate.Load(); g == nil || !g.hold(c.id, nil, msg.Frame()) { // a socket catching up on its inbox (inbox.go)
			_ = c.ws.Queue(msg.Frame())
		}
		n++
	})
	d.release(bp, *bp)
	d.s.metrics.delivered.Add(float64(n))
}

func (d *delivery) Control(c publish.Control) {
	d.s.metrics.msgControl.Inc()
	if c.Op == publish.OpEvict {
		if conn := d.s.reg.socket(c.SocketID); conn != nil && conn.user == c.UserID {
			conn.close(DisconnectReplaced, false)
			d.s.log.Info("socket evicted: its user opened a newer one over the cluster-wide cap",
				zap.String("user", c.UserID), zap.String("socket_id", c.SocketID))
		}
		return
	}
	if c.Op != publish.OpDisconnect {
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
	msg := d.message(resyncPayload, 0)
	d.all(msg, "")
	d.messages.Put(msg)
}

// ResyncTarget sends resync to the sockets of one user or one socket
// (fanout.TargetResyncer): a Redis Cluster shard carrying their channel
// was lost and restored. It is herald's own frame, so it does not go
// through Deliver's check, which drops application payloads of herald's
// frame types.
func (d *delivery) ResyncTarget(to publish.Target) {
	switch to.Kind {
	case publish.ToUser:
		bp := d.scratch()
		targets := d.s.reg.appendUser((*bp)[:0], to.ID)
		for _, c := range targets {
			if !c.hold(nil, frameResync) { // a socket catching up on its inbox (inbox.go)
				c.enqueue(frameResync)
			}
		}
		d.release(bp, targets)
	case publish.ToSocket:
		if c := d.s.reg.socket(to.ID); c != nil {
			c.enqueue(frameResync)
		}
	}
}

var (
	resyncPayload = []byte(`{"type":"resync"}`)
	frameResync   = wscore.TextFrame(resyncPayload)
)

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

// sampledLog writes at most one line a second, counting the lines it
// skipped, so that a flood of bad messages cannot flood the log.
type sampledLog struct {
	next    atomic.Int64 // unix nanos before which lines are skipped
	skipped atomic.Int64
}

func (l *sampledLog) log(log *zap.Logger, msg string, fields ...zap.Field) {
	now := time.Now().UnixNano()
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(time.Second)) {
		l.skipped.Add(1)
		return
	}
	log.Warn(msg, append(fields, zap.Int64("skipped_since_last", l.skipped.Swap(0)))...)
}
