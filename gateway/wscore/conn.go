package wscore

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

// Errors of Conn.Send and Conn.Start.
var (
	// ErrClosed: the socket is closing or closed; the frame was not queued.
	ErrClosed = errors.New("wscore: socket closed")
	// ErrTooLarge: the frame is larger than the queue cap; no socket can
	// carry it. The socket is not affected.
	ErrTooLarge = errors.New("wscore: frame larger than the queue cap")
	// ErrSlowConsumer: the frame did not fit in what is left of the
	// queue's cap. The socket is shed with DisconnectSlowConsumer.
	ErrSlowConsumer = errors.New("wscore: slow consumer")
)

// errWouldBlock is a non-blocking read or write that found nothing to do.
var errWouldBlock = errors.New("wscore: would block")

// Handler receives a socket's events. Its methods are called without any
// lock of the core held and must not block: OnMessage runs on the socket's
// poller goroutine, which serves many sockets (or, for bytes the client sent
// with its handshake, on the goroutine calling Start); OnWritten on a write
// worker; OnClose on whichever goroutine ended the socket.
type Handler interface {
	// OnMessage is called for each complete text or binary message from
	// the client (fragments reassembled; text is valid UTF-8). payload is
	// only valid during the call.
	OnMessage(op ws.OpCode, payload []byte)
	// OnWritten is called after one socket write completed frames built
	// by MessageFrame: how many, and the earliest receipt time among them
	// (a value of Now). It runs on a write worker, or on the goroutine
	// calling Send when Send wrote the frame at once, so it must not take
	// a lock that Send's callers may hold.
	OnWritten(frames int, oldest int64)
	// OnClose is called exactly once, after the socket is closed, with
	// why it ended.
	OnClose(end *Disconnect)
}

// Conn is one WebSocket. It holds no goroutine: until Start the goroutine
// running its handshake owns it; then the poller that watches it reads it,
// a write worker flushes it only while it has queued output, and the
// heartbeat pings and reaps it.
type Conn struct {
	core   *Core
	poller *poller // never changes
	sock   sockFD  // the descriptor, owned by the core; closed once, by teardown (sock.fd is the poller's key)
	h      Handler // never changes

	lastSeen atomic.Int64 // Now of the last bytes read
	nextPing int64        // Now of the next ping; owned by the heartbeat

	in wsframe.Inbound // owned by the handshake goroutine until Start, then by the poller goroutine

	mu        sync.Mutex
	state     State       // guarded by mu; changed only by moveLocked
	started   bool        // registered with the poller (Start ran); guarded by mu
	out       outQueue    // guarded by mu
	scheduled bool        // a write worker owns the flush; guarded by mu
	waitOut   bool        // EPOLLOUT is armed; guarded by mu, and set only together with the epoll interest
	inputDone bool        // the client shut its side after its close frame: input is no longer watched; guarded by mu, set only together with the epoll interest
	stalled   int64       // Now since output has been stuck, or 0; guarded by mu
	endAfter  bool        // tear down once out is written; guarded by mu
	deadline  int64       // Now after which a closing socket is torn down; guarded by mu
	end       *Disconnect // why the socket ends; guarded by mu
}

// moveLocked applies ev to the socket's state. It reports false, changing
// nothing, when ev is not allowed in the current state.
func (c *Conn) moveLocked(ev event) bool {
	to, ok := transition(c.state, ev)
	if ok {
		c.state = to
	}
	return ok
}

// State returns the socket's state now.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// LastSeen returns when bytes last arrived from the client.
func (c *Conn) LastSeen() time.Time { return wallTime(c.lastSeen.Load()) }

// Send queues f without blocking; on an active socket with nothing queued
// it writes f at once (non-blocking, under the socket's lock) and queues
// only what the kernel did not take. During the handshake frames are held
// until Start. A frame larger than the queue cap is refused with
// ErrTooLarge and the socket is not affected; a socket whose queue would
// pass its cap (unsent bytes plus frameCharge per queued frame) is shed
// with DisconnectSlowConsumer (ErrSlowConsumer).
func (c *Conn) Send(f Frame) error { return c.send(f.b, f.stamp(), f, nil, true) }

// SendMessage is Send for a Message: written at once from the sender's
// buffer when the socket is idle, queued as m.Frame() otherwise.
func (c *Conn) SendMessage(m *Message) error { return c.send(m.buf, m.at, Frame{}, m, true) }

// Queue is Send without write-through: f always goes to the queue, and a
// write worker writes it. A broadcast queues, so that its writes spread
// over the write workers (every core) instead of running on the sending
// goroutine.
func (c *Conn) Queue(f Frame) error { return c.send(f.b, f.stamp(), f, nil, false) }

// send is Send of the frame b, received at at (0: not a relayed message),
// which is f, or m's frame when m is set; through allows write-through.
func (c *Conn) send(b []byte, at int64, f Frame, m *Message, through bool) error {
	c.mu.Lock()
	switch {
	case c.state > Active:
		c.mu.Unlock()
		return ErrClosed
	case len(b) > c.core.cfg.MaxQueueBytes:
		c.mu.Unlock()
		return ErrTooLarge
	case c.out.charge()+len(b)+frameCharge > c.core.cfg.MaxQueueBytes:
		if c.shedLocked(DisconnectSlowConsumer, c.core.cfg.CloseTimeout) {
			c.core.slowConsumers.Add(1)
		}
		c.mu.Unlock()
		return ErrSlowConsumer
	}
	if !through || c.out.len() > 0 || !c.idleLocked() {
		if m != nil {
			f = m.Frame()
		}
		c.out.push(f)
		c.kickLocked()
		c.mu.Unlock()
		return nil
	}
	// Write-through: nothing is queued or being written, so the frame goes
	// to the kernel at once from this goroutine, and only what the kernel
	// does not take is queued for a write worker.
	n, err := c.sock.write(b)
	if err == nil && n == len(b) {
		c.stalled = 0
		c.mu.Unlock()
		if at != 0 {
			c.h.OnWritten(1, at)
		}
		return nil
	}
	if m != nil {
		f = m.Frame()
	}
	c.out.push(f)
	c.out.head, c.out.bytes = n, len(b)-n
	if err == errWouldBlock || n > 0 {
		c.stalled = Now()
		if c.waitWritableLocked() == nil {
			c.mu.Unlock()
			return nil
		}
	}
	// A write error: a write worker meets it again and tears the socket
	// down, so that Send never calls OnClose (its caller may hold locks).
	c.kickLocked()
	c.mu.Unlock()
	return nil
}

// idleLocked reports whether the socket is active with no output queued or
// in a write, and none waited for: a frame sent now may be written at once.
func (c *Conn) idleLocked() bool {
	return c.started && c.state == Active && !c.scheduled && !c.waitOut
}

// kickLocked hands the socket to a write worker if it has output and nobody
// is flushing it or waiting for it to become writable.
func (c *Conn) kickLocked() {
	if !c.started || c.state == Closed || c.scheduled || c.waitOut || c.out.len() == 0 {
		return
	}
	c.scheduled = true
	c.core.writers.schedule(c)
}

// Close sends the close frame for d after the output already queued and
// stops accepting output. The socket is torn down when the client answers
// with its close frame, or at the close timeout. During the handshake the
// held output is dropped: the client gets only the close frame. It reports
// whether the socket was open.
func (c *Conn) Close(d *Disconnect) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked(d, nil)
}

// CloseAfter is Close with one last frame queued before the close frame,
// when the socket is active (a socket in its handshake gets only the close
// frame).
func (c *Conn) CloseAfter(last Frame, d *Disconnect) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked(d, &last)
}

func (c *Conn) closeLocked(d *Disconnect, last *Frame) bool {
	from := c.state
	if !c.moveLocked(evClose) {
		return false
	}
	if from == Handshake {
		c.out.dropUnstarted()
	} else if last != nil {
		c.out.push(*last)
	}
	c.queueCloseLocked(d, c.core.cfg.CloseTimeout)
	return true
}

// Shed closes the socket without waiting for the client: output not yet
// started is dropped, the close frame for d is written, and the socket is
// torn down once it is, or after within.
func (c *Conn) Shed(d *Disconnect, within time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shedLocked(d, within)
}

func (c *Conn) shedLocked(d *Disconnect, within time.Duration) bool {
	if !c.moveLocked(evShed) {
		return false
	}
	c.endAfter = true
	c.out.dropUnstarted()
	c.queueCloseLocked(d, within)
	return true
}

// queueCloseLocked queues the close frame for d; the socket is torn down at
// the latest within after it can be written.
func (c *Conn) queueCloseLocked(d *Disconnect, within time.Duration) {
	c.out.push(closeFrame(d))
	c.end = d
	c.deadline = Now() + int64(within)
	c.kickLocked() // a socket still in its handshake is flushed by Start
}

// Start ends the handshake: the socket is handed to its poller and the
// output held meanwhile starts flowing. early holds bytes the client sent
// before the handshake's response was read, which are parsed first; it may
// be nil. Start returns the state after it: Active for a socket whose
// handshake succeeded, Closing for one closed or shed during its handshake
// (its close frame is written, and it is never active). A socket already
// torn down (or a core already closed) returns ErrClosed. Start is called
// once, by the goroutine that ran the handshake.
func (c *Conn) Start(early []byte) (State, error) {
	c.mu.Lock()
	if c.started || !c.moveLocked(evStart) {
		c.mu.Unlock()
		return Closed, ErrClosed
	}
	if c.state == Closing {
		// Closed during the handshake: the close handshake starts now.
		c.deadline = Now() + int64(c.core.cfg.CloseTimeout)
	}
	c.mu.Unlock()
	if len(early) > 0 {
		c.lastSeen.Store(Now())
		c.consume(early) // no poller reads the socket yet: this goroutine owns c.in
	}
	c.mu.Lock()
	if c.state == Closed {
		c.mu.Unlock()
		return Closed, ErrClosed
	}
	if err := c.core.registerLocked(c); err != nil {
		c.mu.Unlock()
		c.teardown(EndClientGone)
		return Closed, err
	}
	c.started = true
	state := c.state
	c.kickLocked()
	c.mu.Unlock()
	return state, nil
}

// Drop tears the socket down at once, without a close frame: end is what
// OnClose reports.
func (c *Conn) Drop(end *Disconnect) { c.teardown(end) }

// onReadable is called by the poller when the socket has input or was hung
// up. buf is the poller's buffer: nothing may keep a reference to it.
func (c *Conn) onReadable(buf []byte) {
	n, err := c.sock.read(buf)
	if err == errWouldBlock || err == ErrClosed {
		return
	}
	if n == 0 && err == nil && c.endOfInput() {
		return
	}
	if n == 0 || err != nil {
		c.teardown(EndClientGone)
		return
	}
	c.lastSeen.Store(Now())
	c.consume(buf[:n])
}

// consume parses bytes read from the client. A client that breaks the
// protocol is shed with the matching close code.
func (c *Conn) consume(p []byte) {
	err := c.in.Feed(p, c.core.cfg.MaxMessageBytes, c.onFrame)
	switch d := asDisconnect(err); {
	case err == nil, err == errStopRead:
	case d != nil:
		c.Shed(d, time.Second)
		c.in = wsframe.Inbound{}
	default:
		c.teardown(EndClientGone)
	}
}

// onFrame handles one client message or control frame.
func (c *Conn) onFrame(op ws.OpCode, payload []byte) error {
	switch op {
	case ws.OpText:
		if !utf8.Valid(payload) {
			return DisconnectInvalidUTF8
		}
		c.h.OnMessage(op, payload)
	case ws.OpBinary:
		c.h.OnMessage(op, payload)
	case ws.OpPing:
		_ = c.Send(controlFrame(ws.OpPong, payload))
	case ws.OpClose:
		code, err := wsframe.ParseClose(payload)
		if err != nil {
			return err
		}
		c.onPeerClose(code)
		return errStopRead
	}
	return nil // pongs only count as activity
}

// onPeerClose answers a client's close frame: an active socket echoes the
// code; a socket that already sent its own close frame is done once it is
// written.
func (c *Conn) onPeerClose(code ws.StatusCode) {
	c.mu.Lock()
	from := c.state
	if !c.moveLocked(evPeerClose) {
		c.mu.Unlock()
		return
	}
	c.endAfter = true
	if from == Active {
		echo := &Disconnect{Code: code}
		if code == ws.StatusNoStatusRcvd {
			echo.Code = ws.StatusNormalClosure
		}
		c.out.dropUnstarted()
		c.queueCloseLocked(echo, time.Second)
		c.end = &Disconnect{Code: code, Reason: "client_closed"}
		c.mu.Unlock()
		return
	}
	done := c.out.len() == 0
	c.mu.Unlock()
	if done {
		c.teardown(nil)
	}
}

// endOfInput handles the end of the client's stream on a socket that is
// closing and still has output for it, such as the echo of the client's
// close frame: the client may still read, so input stops being watched and
// the socket is torn down once its output is written (or at its close
// deadline). It reports false, changing nothing, for any other socket, which
// the caller tears down.
func (c *Conn) endOfInput() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inputDone {
		return c.state != Closed // a report read before input was turned off
	}
	if c.state != Closing || !c.endAfter || c.out.len() == 0 {
		return false
	}
	c.inputDone = true
	if err := c.poller.watchWriteLocked(c, c.waitOut); err != nil {
		c.inputDone = false
		return false
	}
	return true
}

// onWritable is called by the poller when a socket whose output was stuck
// can take more. The interest is turned off under the lock, so that it can
// never undo a write worker's later request for it.
func (c *Conn) onWritable() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.waitOut || c.state == Closed {
		return
	}
	if err := c.poller.watchWriteLocked(c, false); err != nil {
		return // the socket is being closed; teardown removes it
	}
	c.waitOut = false
	c.kickLocked()
}

// waitWritableLocked asks the poller to report when the socket can take
// more output.
func (c *Conn) waitWritableLocked() error {
	if c.waitOut {
		return nil
	}
	if err := c.poller.watchWriteLocked(c, true); err != nil {
		return err
	}
	c.waitOut = true
	return nil
}

// teardown closes the socket and reports its end, once. why is the end
// reason when none was recorded by a close handshake; nil means a clean end.
func (c *Conn) teardown(why *Disconnect) {
	c.mu.Lock()
	if !c.moveLocked(evTeardown) {
		c.mu.Unlock()
		return
	}
	c.out.reset()
	if c.end == nil {
		c.end = why
	}
	if c.end == nil {
		c.end = EndClientGone
	}
	end := c.end
	if c.started {
		c.poller.removeLocked(c) // under c.mu, before the descriptor is closed
		c.waitOut = false
	}
	c.mu.Unlock()
	c.sock.close()
	c.h.OnClose(end)
}
