package redis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/internal/resp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The pub/sub connection is opened by go-redis (dial, TLS, Sentinel's
// choice of primary, HELLO or AUTH, SELECT, and the static subscriptions
// that open it). After that the session writes its own commands on it
// (SUBSCRIBE and the like, PING: pubsubConn.command), and reads it itself, with an internal/resp Reader: go-redis's PubSub reader
// allocates about fourteen times a message and copies its payload, the
// Reader nothing at all, and the payload reaches the Handler as a slice of
// the read buffer. To get at the connection, the session passes the
// context of the command that opens it a captureKey holding a *netConnSlot;
// dialGuard stores there the connection it dials for that context. Nothing
// but that command's dial sees the key, and go-redis reads nothing from the
// connection after its own handshake: every reply and push is the
// session's.

// captureKey marks a context whose dial is the session's pub/sub
// connection; its value is a *netConnSlot.
type captureKey struct{}

// netConnSlot receives the connection dialled for a captureKey context. It
// is written and read on the goroutine that opens the connection (go-redis
// dials on the caller's goroutine).
type netConnSlot struct{ c net.Conn }

// errReply is an error reply Redis sent, read in full: the connection is
// sound, but the session does not expect it.
type errReply string

func (e errReply) Error() string { return "redis: " + string(e) }

// receive reads nc, the connection of ps, and hands what it reads to the
// handler until a read fails. It is the only reader of nc, and reads
// without a deadline: a dead connection is noticed by its error, by the
// health check, which closes ps, or by Close.
func (r *session) receive(nc net.Conn) error {
	rd := resp.NewReader(nc, resp.Config{})
	for {
		rep, err := rd.Next()
		if err != nil {
			return err
		}
		r.frames.Add(1) // any frame read is proof of life (health.go)
		switch rep.Kind {
		case resp.KindArray, resp.KindPush:
			r.onPush(rep.Args)
		case resp.KindBulk, resp.KindSimple:
			// RESP3 answers a PING with its payload (PONG without one),
			// as it answers any command, even on a subscribed connection.
			r.onPong(rep.Args[0])
		case resp.KindError:
			if slot, addr, ok := movedReply(rep.Args[0]); ok && r.mode.sharded {
				r.onMoved(slot, addr)
				continue
			}
			return errReply(rep.Args[0])
		}
		// An integer or a null: nothing a subscriber is sent; skipped.
	}
}

// onPush handles an array (RESP2) or a push (RESP3): a message, a
// subscription's confirmation, or (RESP2) a PING's answer. An unknown kind
// is skipped, as go-redis's own push notifications would have been.
func (r *session) onPush(args [][]byte) {
	if len(args) == 0 {
		return
	}
	switch kind := args[0]; {
	case (string(kind) == "message" || string(kind) == "smessage") && len(args) == 3:
		r.dispatch(args[1], args[2])
	case string(kind) == "pmessage" && len(args) == 4:
		r.dispatch(args[2], args[3])
	case string(kind) == "pong" && len(args) == 2:
		r.onPong(args[1])
	case len(args) == 3 && isSubscriptionKind(kind):
		// The channel is nil in the reply to an UNSUBSCRIBE of nothing.
		r.onSubscription(string(kind), string(args[1]))
	}
}

func isSubscriptionKind(kind []byte) bool {
	switch string(kind) {
	case "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe":
		return true
	}
	return false
}

// dispatch hands one message to the handler, or counts why not. channel
// and payload are slices of the read buffer: the Handler gets them for the
// call only (fanout.Handler), the target's id a string over channel's
// bytes.
func (r *session) dispatch(channel, payload []byte) {
	if string(channel) == r.control {
		c, reason := fanout.DecodeControl(payload)
		if reason != "" {
			r.dropped(reason, string(channel), zap.String("op", c.Op))
			return
		}
		r.m.ControlApplied()
		r.h.Control(c)
		return
	}
	to, ok := r.ch.Parse(bytesString(channel))
	if !ok {
		r.dropped(fanout.DropBadChannel, string(channel))
		return
	}
	r.m.Delivered(to)
	r.h.Deliver(to, payload)
}

// bytesString returns b's bytes as a string without copying them. The
// string is valid as long as b is unchanged: only for the Handler call.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// onPong records the answer to a health PING, or looks at readiness again
// after a kick.
func (r *session) onPong(payload []byte) {
	if n, err := strconv.ParseUint(bytesString(payload), 10, 64); err == nil {
		r.pongs.Store(n)
		return
	}
	if string(payload) == kickPing {
		r.mu.Lock()
		ready, users := r.checkReadyLocked()
		r.mu.Unlock()
		if ready {
			r.markReady(users)
		}
	}
}

// movedReply returns the slot and address of a MOVED error reply's text.
func movedReply(msg []byte) (slot int, addr string, ok bool) {
	return movedText(string(msg))
}

// openContext returns ctx marked so that dialGuard keeps the connection it
// dials for it in the returned slot.
func openContext(ctx context.Context) (context.Context, *netConnSlot) {
	slot := new(netConnSlot)
	return context.WithValue(ctx, captureKey{}, slot), slot
}

// errNotCaptured: the command that should have opened the pub/sub
// connection found one open already, so the session cannot read it.
var errNotCaptured = errors.New("fanout: the pub/sub connection was not dialled by the session")

// pubsubConn is one pub/sub connection: go-redis's PubSub, which opened it
// and closes it, and the connection itself, which the session reads
// (receive) and writes its commands on (command). Once it is open, go-redis
// neither reads nor writes it: the session's subscriptions are not recorded
// in the PubSub (whose own record costs a map entry and a string per
// channel), and every command after the opening ones is the session's.
type pubsubConn struct {
	ps      *redis.PubSub
	nc      net.Conn
	timeout time.Duration // the write deadline of one command; <= 0: none

	mu  sync.Mutex // a leaf: one command at a time on nc
	buf []byte     // guarded by mu; the command being written
}

func newPubsubConn(ps *redis.PubSub, nc net.Conn, opt *redis.Options) *pubsubConn {
	timeout := opt.WriteTimeout
	if timeout == 0 {
		timeout = 3 * time.Second // go-redis's default
	}
	return &pubsubConn{ps: ps, nc: nc, timeout: timeout}
}

// command writes the command verb with args, within the connection's
// write timeout and, if within > 0, within that. The write is whole or the
// connection is unusable: the caller closes it on an error. An error that
// matches net.ErrClosed means the connection was closed already.
func (c *pubsubConn) command(within time.Duration, verb string, args ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = appendCommand(c.buf[:0], verb, args)
	d := c.timeout
	if within > 0 && (d <= 0 || within < d) {
		d = within
	}
	if d > 0 {
		if err := c.nc.SetWriteDeadline(time.Now().Add(d)); err != nil {
			return err
		}
	}
	_, err := c.nc.Write(c.buf)
	if cap(c.buf) > 64<<10 {
		c.buf = nil // a large batch's buffer is not kept
	}
	return err
}

func (c *pubsubConn) close() { _ = c.ps.Close() }

// appendCommand appends verb and args as one RESP command to dst.
func appendCommand(dst []byte, verb string, args []string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(1+len(args)), 10)
	dst = append(dst, '\r', '\n')
	dst = appendBulk(dst, verb)
	for _, a := range args {
		dst = appendBulk(dst, a)
	}
	return dst
}

func appendBulk(dst []byte, s string) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, s...)
	return append(dst, '\r', '\n')
}
