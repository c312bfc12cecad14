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

	// state is where the socket is in its life (connState); it changes
	// only through to, from any goroutine.
	state atomic.Uint32
}

// connState is where a socket is in the gateway's life of it: a phase and
// two marks. Every change goes through transition; Conn.to applies it.
//
//	New ──register──▶ Registered ──welcome──▶ Welcomed
//	 │                    │                      │
//	 └───────────────────end─────────────────────┴──▶ Ended
//
// New: in its handshake, not in the registry. Registered: in the
// registry, its handshake running. Welcomed: the handshake succeeded and
// the socket went to the core. Ended: the core reported its end (OnClose).
// The marks: counted, the socket is counted in presence's per-user counts
// (set in New by count, cleared by uncount); drainSlot, it holds one of
// Server.drainSlots (set by drain on a registered socket, cleared by
// undrain). end clears both: whoever moves a socket to Ended undoes what
// the state it left says (registry, presence, drain slot).
type connState uint32

const (
	connNew connState = iota
	connRegistered
	connWelcomed
	connEnded

	phaseMask     connState = 3
	markCounted   connState = 1 << 2
	markDrainSlot connState = 1 << 3
)

func (s connState) phase() connState { return s & phaseMask }
func (s connState) counted() bool    { return s&markCounted != 0 }
func (s connState) drainSlot() bool  { return s&markDrainSlot != 0 }

// registered reports whether the socket is in the registry in s.
func (s connState) registered() bool { return s.phase() == connRegistered || s.phase() == connWelcomed }

func (s connState) String() string {
	name := [...]string{"new", "registered", "welcomed", "ended"}[s.phase()]
	if s.counted() {
		name += "+counted"
	}
	if s.drainSlot() {
		name += "+drainSlot"
	}
	return name
}

// connEvent is something that happens to a socket.
type connEvent uint8

const (
	evCount    connEvent = iota // counted in presence (the handshake)
	evUncount                   // no longer counted (a refusal)
	evRegister                  // added to the registry (the handshake)
	evWelcome                   // handed to the core, welcomed (the handshake's exit)
	evDrain                     // given a drain slot (Shutdown)
	evUndrain                   // the drain slot given back: the socket was closing already
	evEnd                       // the core reported the socket's end
	numConnEvents
)

func (e connEvent) String() string {
	return [...]string{"count", "uncount", "register", "welcome", "drain", "undrain", "end"}[e]
}

// transition is the socket's state machine: the state after ev in from, or
// ok == false when ev is not allowed in from (and the caller must do
// nothing).
func transition(from connState, ev connEvent) (to connState, ok bool) {
	phase := from.phase()
	switch ev {
	case evCount:
		if phase == connNew && !from.counted() {
			return from | markCounted, true
		}
	case evUncount:
		if phase != connEnded && from.counted() {
			return from &^ markCounted, true
		}
	case evRegister:
		if phase == connNew {
			return from&^phaseMask | connRegistered, true
		}
	case evWelcome:
		if phase == connRegistered {
			return from&^phaseMask | connWelcomed, true
		}
	case evDrain:
		if from.registered() && !from.drainSlot() {
			return from | markDrainSlot, true
		}
	case evUndrain:
		if phase != connEnded && from.drainSlot() {
			return from &^ markDrainSlot, true
		}
	case evEnd:
		if phase != connEnded {
			return connEnded, true
		}
	}
	return from, false
}

// to applies ev to the socket's state. It returns the state ev was applied
// in, and whether it was allowed there.
func (c *Conn) to(ev connEvent) (from connState, ok bool) {
	for {
		from = connState(c.state.Load())
		next, ok := transition(from, ev)
		if !ok {
			return from, false
		}
		if c.state.CompareAndSwap(uint32(from), uint32(next)) {
			return from, true
		}
	}
}

// now is the socket's state.
func (c *Conn) now() connState { return connState(c.state.Load()) }

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
