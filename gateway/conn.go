package gateway

import (
	"bytes"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway/wscore"
)

// Conn is one socket as the gateway sees it: who it belongs to and where it
// came from. Its I/O, output queue and lifecycle are the socket core's
// (wscore.Conn); the gateway only queues frames to it and closes it.
type Conn struct {
	srv *Server
	ws  *wscore.Conn // set by newConn, never changes

	// gate holds what fan-out gives the socket during its inbox catch-up
	// (inbox.go). Set by the handshake before it registers the socket and
	// cleared once the catch-up is queued; nil otherwise. Fan-out loads it
	// once per message and socket: it sits next to ws, on the cache line
	// fan-out reads anyway.
	gate atomic.Pointer[inboxGate]

	id          string // set by the handshake before the socket is registered
	user        string // idem
	remoteIP    string
	userAgent   string
	connectedAt time.Time

	registered atomic.Bool // added to the registry by the handshake
	welcomed   atomic.Bool // the handshake succeeded
	drainSlot  atomic.Bool // holds one of Server.drainSlots, released when the socket ends
	counted    atomic.Bool // counted in Presence's per-user counts (presence.go)
}

// SocketInfo describes a connected socket.
type SocketInfo struct {
	ID          string
	UserID      string
	RemoteIP    string
	UserAgent   string
	ConnectedAt time.Time
	LastSeen    time.Time
}

func (c *Conn) info() SocketInfo {
	return SocketInfo{
		ID: c.id, UserID: c.user, RemoteIP: c.remoteIP, UserAgent: c.userAgent,
		ConnectedAt: c.connectedAt, LastSeen: c.ws.LastSeen(),
	}
}

// enqueue queues a frame for the socket without blocking. It reports
// whether the frame was queued; a socket over its queue cap is shed with
// 4009 by the core.
func (c *Conn) enqueue(f wscore.Frame) bool { return c.ws.Send(f) == nil }

// close closes the socket with d. With drop, queued frames not yet started
// are discarded (the socket is shed); without it they are written first.
func (c *Conn) close(d *Disconnect, drop bool) {
	if drop {
		c.ws.Shed(d, c.srv.cfg.CloseTimeout)
		return
	}
	c.ws.Close(d)
}

// connEvents is the core's handler for one socket: it is the socket's Conn,
// with the methods the core calls.
type connEvents Conn

// OnMessage answers {"type":"ping"}; other client messages are ignored.
func (e *connEvents) OnMessage(op ws.OpCode, payload []byte) {
	if op == ws.OpText && isPing(payload) {
		_ = e.ws.Send(framePong)
	}
}

// OnWritten records the delivery latency of the oldest message a socket
// write completed: one observation per write, not per message.
func (e *connEvents) OnWritten(_ int, oldest int64) {
	e.srv.metrics.deliveryLatency.Observe(float64(wscore.Now()-oldest) / 1e9)
}

// OnClose unregisters the socket and logs its end.
func (e *connEvents) OnClose(end *Disconnect) { e.srv.connEnded((*Conn)(e), end) }

// framePong answers a client's {"type":"ping"}.
var framePong = wscore.TextFrame([]byte(`{"type":"pong"}`))

// isPing reports whether a client text message is {"type":"ping"}.
func isPing(p []byte) bool {
	if bytes.Equal(p, []byte(`{"type":"ping"}`)) {
		return true
	}
	if len(p) > 256 || !bytes.Contains(p, []byte("ping")) {
		return false
	}
	var m struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(p, &m) == nil && m.Type == "ping"
}
