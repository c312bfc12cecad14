package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// errWouldBlock is a non-blocking read or write that found nothing to do.
var errWouldBlock = errors.New("gateway: would block")

type connState uint8

const (
	stateNew     connState = iota // handshake in progress; output is held
	stateOpen                     // welcome queued; messages flow
	stateClosing                  // close frame queued; nothing else is accepted
	stateClosed                   // socket closed and unregistered
)

// Conn is one WebSocket. It holds no goroutine: the poller that watches it
// reads it, a write worker flushes it only while it has queued output, and
// the heartbeat loop pings and reaps it.
type Conn struct {
	srv    *Server
	poller *poller         // never changes after the handshake
	nc     net.Conn        // the socket; closed once, by teardown
	raw    syscall.RawConn // nc's descriptor, for non-blocking I/O
	fd     int32           // nc's descriptor number, the poller's key

	id          string
	user        string
	remoteIP    string
	userAgent   string
	connectedAt time.Time

	lastSeen atomic.Int64 // unix nanos of the last bytes read
	nextPing int64        // unix nanos; owned by the heartbeat loop

	in inbound // owned by the poller goroutine

	mu        sync.Mutex
	state     connState     // guarded by mu
	out       [][]byte      // queued frames, oldest first; guarded by mu
	outBytes  int           // bytes in out not yet written; guarded by mu
	head      int           // bytes of out[0] already written; guarded by mu
	writing   int           // frames at the head of out in a writev under way; guarded by mu
	scheduled bool          // a write worker owns the flush; guarded by mu
	waitOut   bool          // waiting for the poller's writable report; guarded by mu
	stalled   int64         // unix nanos since output has been stuck, or 0; guarded by mu
	endAfter  bool          // tear down once out is written; guarded by mu
	deadline  int64         // unix nanos after which a closing socket is torn down; guarded by mu
	end       *Disconnect   // why the socket ends; guarded by mu
	active    bool          // registered with the poller; guarded by mu
	slots     chan struct{} // drain slot released at teardown; guarded by mu

	registered atomic.Bool // added to the registry by the handshake
	welcomed   atomic.Bool // the handshake succeeded
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
		ConnectedAt: c.connectedAt, LastSeen: time.Unix(0, c.lastSeen.Load()),
	}
}

// enqueue queues a frame for the socket without blocking. A socket whose
// queue would pass the byte cap is closed as a slow consumer. It reports
// whether the frame was queued.
func (c *Conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.state > stateOpen {
		c.mu.Unlock()
		return false
	}
	if c.outBytes+len(frame) > c.srv.cfg.MaxQueueBytes {
		c.mu.Unlock()
		c.srv.metrics.slowConsumers.Inc()
		c.close(DisconnectSlowConsumer, true)
		return false
	}
	c.out = append(c.out, frame)
	c.outBytes += len(frame)
	c.kickLocked()
	c.mu.Unlock()
	return true
}

// kickLocked hands the socket to a write worker if it has output and nobody
// is flushing it or waiting for it to become writable.
func (c *Conn) kickLocked() {
	if !c.active || c.scheduled || c.waitOut || len(c.out) == 0 {
		return
	}
	c.scheduled = true
	c.srv.writers.schedule(c)
}

// close queues a close frame for d and stops accepting output. With drop,
// queued frames not yet started are discarded (the socket is shed); without
// it they are written first. The socket is torn down when the client answers
// with its close frame, or at the close timeout.
func (c *Conn) close(d *Disconnect, drop bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state > stateOpen {
		return
	}
	c.closeLocked(d, drop, time.Now().Add(c.srv.cfg.CloseTimeout).UnixNano())
}

func (c *Conn) closeLocked(d *Disconnect, drop bool, deadline int64) {
	if drop {
		// Frames in a write under way, and a frame half written, stay.
		keep := c.writing
		if c.head > 0 {
			keep = max(keep, 1)
		}
		clear(c.out[keep:])
		c.out = c.out[:keep]
		c.outBytes = -c.head
		for _, f := range c.out {
			c.outBytes += len(f)
		}
	}
	frame := closeFrame(d)
	c.out = append(c.out, frame)
	c.outBytes += len(frame)
	c.end = d
	c.deadline = deadline
	c.state = stateClosing
	c.kickLocked() // a socket still in its handshake is flushed on activation
}

// fail ends a socket whose handshake failed: only the close frame for d is
// written, and the socket is torn down once it is.
func (c *Conn) fail(d *Disconnect) { c.shed(d, c.srv.cfg.CloseTimeout) }

// shed closes a socket without waiting for the client: queued frames not yet
// started are dropped, the close frame for d is written, and the socket is
// torn down once it is, or after within.
func (c *Conn) shed(d *Disconnect, within time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state > stateOpen {
		return
	}
	c.endAfter = true
	c.closeLocked(d, true, time.Now().Add(within).UnixNano())
}

// activate hands a socket whose handshake is over to its poller and starts
// writing what was queued meanwhile: the welcome frame first, or the close
// frame of a failed handshake.
func (c *Conn) activate() error {
	if err := c.poller.add(c); err != nil {
		c.teardown(endClientGone)
		return err
	}
	c.mu.Lock()
	c.active = true
	if c.state == stateNew {
		c.state = stateOpen
	}
	closed := c.state == stateClosed
	c.kickLocked()
	c.mu.Unlock()
	if closed { // torn down while activating
		c.poller.remove(c)
	}
	return nil
}

// onReadable is called by the poller when the socket has input or was hung
// up. buf is the poller's buffer: nothing may keep a reference to it.
func (c *Conn) onReadable(buf []byte) {
	n, err := readRaw(c.raw, buf)
	if err == errWouldBlock {
		return
	}
	if n == 0 || err != nil {
		c.teardown(endClientGone)
		return
	}
	c.lastSeen.Store(time.Now().UnixNano())
	c.consume(buf[:n])
}

// consume parses bytes read from the client. A client that breaks the
// protocol is shed with the matching close code.
func (c *Conn) consume(p []byte) {
	err := c.in.feed(p, c.srv.cfg.MaxMessageBytes, c.onFrame)
	var d *Disconnect
	switch {
	case err == nil, err == errStopRead:
	case errors.As(err, &d):
		c.shed(d, time.Second)
		c.in = inbound{}
	default:
		c.teardown(endClientGone)
	}
}

// onFrame handles one client message or control frame.
func (c *Conn) onFrame(op ws.OpCode, payload []byte) error {
	switch op {
	case ws.OpText:
		if !utf8.Valid(payload) {
			return DisconnectInvalidUTF8
		}
		if isPing(payload) {
			c.enqueue(framePong)
		}
	case ws.OpPing:
		c.enqueue(controlFrame(ws.OpPong, payload))
	case ws.OpClose:
		code, err := parseClose(payload)
		if err != nil {
			return err
		}
		c.onClientClose(code)
		return errStopRead
	}
	return nil // pongs and binary messages only count as activity
}

// onClientClose answers a client's close frame: an open socket echoes the
// code; a socket that already sent its own close frame is done.
func (c *Conn) onClientClose(code ws.StatusCode) {
	c.mu.Lock()
	c.endAfter = true
	switch c.state {
	case stateOpen:
		echo := &Disconnect{Code: code, Reason: ""}
		if code == ws.StatusNoStatusRcvd {
			echo.Code = ws.StatusNormalClosure
		}
		c.closeLocked(echo, true, time.Now().Add(time.Second).UnixNano())
		c.end = &Disconnect{Code: code, Reason: "client_closed"}
		c.mu.Unlock()
	case stateClosing:
		done := len(c.out) == 0
		c.mu.Unlock()
		if done {
			c.teardown(nil)
		}
	default:
		c.mu.Unlock()
	}
}

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

// onWritable is called by the poller when a socket whose output was stuck
// can take more.
func (c *Conn) onWritable() {
	c.mu.Lock()
	if !c.waitOut {
		c.mu.Unlock()
		return
	}
	c.waitOut = false
	c.mu.Unlock()
	_ = c.poller.watchWrite(c, false)
	c.mu.Lock()
	c.kickLocked()
	c.mu.Unlock()
}

// tick runs the heartbeat for one socket: ping when due, reap a socket that
// went silent, whose output is stuck, or whose close handshake timed out.
func (c *Conn) tick(now int64, cfg *Config) {
	c.mu.Lock()
	state, stalled, deadline := c.state, c.stalled, c.deadline
	c.mu.Unlock()
	switch {
	case state == stateClosing && now > deadline:
		c.teardown(endCloseTimeout)
	case state != stateOpen:
	case stalled != 0 && now-stalled > int64(cfg.WriteTimeout):
		c.srv.metrics.writeTimeouts.Inc()
		c.teardown(endWriteTimeout)
	case now-c.lastSeen.Load() > int64(cfg.IdleTimeout):
		c.shed(DisconnectIdle, time.Second)
	case now >= c.nextPing:
		c.nextPing = now + int64(cfg.PingInterval)
		c.enqueue(framePing)
	}
}

// teardown closes the socket and unregisters it, once. why is the end
// reason when none was recorded by a close handshake; nil means a clean end.
func (c *Conn) teardown(why *Disconnect) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	active := c.active
	c.state = stateClosed
	clear(c.out)
	c.out, c.outBytes, c.head = nil, 0, 0
	if c.end == nil {
		c.end = why
	}
	if c.end == nil {
		c.end = endClientGone
	}
	end := c.end
	slots := c.slots
	c.mu.Unlock()
	if slots != nil {
		<-slots
	}

	if active {
		c.poller.remove(c)
	}
	_ = c.nc.Close()
	c.srv.connEnded(c, end)
}
