//go:build linux

package wscore

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/testenv"
)

// recorder is a Handler that remembers what it was told.
type recorder struct {
	mu     sync.Mutex
	closed []*Disconnect
	msgs   []string
}

func (r *recorder) OnMessage(_ ws.OpCode, p []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, string(p))
	r.mu.Unlock()
}
func (r *recorder) OnWritten(int, int64) {}
func (r *recorder) OnClose(end *Disconnect) {
	r.mu.Lock()
	r.closed = append(r.closed, end)
	r.mu.Unlock()
}

func (r *recorder) ends() []*Disconnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Disconnect(nil), r.closed...)
}

func newTestCore(t *testing.T) *Core {
	t.Helper()
	k, err := New(Config{Pollers: 1, Writers: 1, CloseTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T, ln net.Listener) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (p *poller) lookup(fd int32) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[fd]
}

// TestStartAfterTeardown: a socket torn down during its handshake is never
// registered, reports its end once, and cannot disturb a newer socket that
// got its descriptor number.
func TestStartAfterTeardown(t *testing.T) {
	k := newTestCore(t)
	ln := listen(t)
	spare := testenv.SpareFD(t)
	_, s1 := pair(t, ln)
	_, s2 := pair(t, ln)
	r1 := &recorder{}
	old, err := k.NewConn(s1, r1)
	if err != nil {
		t.Fatal(err)
	}
	fd := old.sock.fd
	old.Drop(EndClientGone)
	old.Drop(EndClientGone)
	if got := r1.ends(); len(got) != 1 || got[0] != EndClientGone {
		t.Fatalf("OnClose calls %v, want one with connection_lost", got)
	}

	// The next socket the core takes gets the freed descriptor number:
	// NewConn's duplicate is the next descriptor opened after a filler
	// takes the spare slot below it.
	release := testenv.FreeFDFirst(t, int(fd), spare)
	filler := testenv.SpareFD(t)
	newer, err := k.NewConn(s2, &recorder{})
	release()
	syscall.Close(filler)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := newer.Start(nil); st != Active || err != nil {
		t.Fatalf("newer Start = %s, %v; want active", st, err)
	}
	if newer.sock.fd != fd {
		t.Fatalf("newer socket on fd %d, want the reused %d", newer.sock.fd, fd)
	}

	if st, err := old.Start(nil); st != Closed || err != ErrClosed {
		t.Fatalf("Start after teardown = %s, %v; want closed, ErrClosed", st, err)
	}
	if got := old.poller.lookup(newer.sock.fd); got != newer {
		t.Fatalf("fd map entry for %d = %p, want the newer socket %p", newer.sock.fd, got, newer)
	}
	if old.State() != Closed || old.started {
		t.Fatalf("old socket: %s, started %v", old.State(), old.started)
	}
}

// TestPollerAddRefusesRegisteredFD: the fd map never takes a descriptor
// number that another socket still holds, and a failed add removes only
// its own entry.
func TestPollerAddRefusesRegisteredFD(t *testing.T) {
	k := newTestCore(t)
	ln := listen(t)
	_, s := pair(t, ln)
	c, err := k.NewConn(s, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(nil); err != nil {
		t.Fatal(err)
	}
	impostor := &Conn{core: k, poller: c.poller, sock: sockFD{fd: c.sock.fd}}
	impostor.mu.Lock()
	err = c.poller.addLocked(impostor)
	impostor.mu.Unlock()
	if err == nil {
		t.Fatal("addLocked of a registered descriptor succeeded")
	}
	c.poller.forget(impostor)
	if got := c.poller.lookup(c.sock.fd); got != c {
		t.Fatalf("fd map entry = %p, want the registered socket %p", got, c)
	}
	c.Drop(EndClientGone)
	if got := c.poller.lookup(c.sock.fd); got != nil {
		t.Fatalf("fd map still holds %p after teardown", got)
	}
}

// TestCloseDuringHandshake: a socket closed before Start drops the output
// it held (the client never sees it) and writes only its close frame.
func TestCloseDuringHandshake(t *testing.T) {
	k := newTestCore(t)
	ln := listen(t)
	client, s := pair(t, ln)
	c, err := k.NewConn(s, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(TextFrame([]byte("welcome"))); err != nil {
		t.Fatal(err)
	}
	if !c.Close(&Disconnect{Code: 4000, Reason: "disconnected"}) {
		t.Fatal("Close in the handshake refused")
	}
	if err := c.Send(TextFrame([]byte("late"))); err != ErrClosed {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if st, err := c.Start(nil); st != Closing || err != nil {
		t.Fatalf("Start = %s, %v; want closing", st, err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(client)
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("first frame %v %q, want the close frame", f.Header.OpCode, f.Payload)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != 4000 {
		t.Fatalf("close code %d, want 4000", code)
	}
}

// TestSendLimits: a frame over the cap is refused without harm; one that
// does not fit what is left sheds the socket.
func TestSendLimits(t *testing.T) {
	k, err := New(Config{Pollers: 1, Writers: 1, MaxQueueBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ln := listen(t)
	_, s := pair(t, ln)
	c, err := k.NewConn(s, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	big := TextFrame(make([]byte, 4096))
	if err := c.Send(big); err != ErrTooLarge {
		t.Fatalf("Send of %d bytes = %v, want ErrTooLarge", big.Len(), err)
	}
	if c.State() != Handshake {
		t.Fatalf("state %s after a refused frame, want handshake", c.State())
	}
	half := TextFrame(make([]byte, 3000))
	if err := c.Send(half); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(half); err != ErrSlowConsumer {
		t.Fatalf("Send over the cap = %v, want ErrSlowConsumer", err)
	}
	if c.State() != Closing || k.Stats().SlowConsumers != 1 {
		t.Fatalf("state %s, slow consumers %d; want closing, 1", c.State(), k.Stats().SlowConsumers)
	}
	c.Drop(EndClientGone)
}

// TestQueueChargesPerFrame fills a socket in its handshake (frames held
// until Start) with empty messages. Each queued frame costs a slice entry
// besides its bytes, and broadcast frames share their bytes, so counting
// bytes alone let a 4 KiB cap hold 2,048 two-byte frames: 48 KiB of queue.
// The cap must bound the memory a queue holds, overhead included.
func TestQueueChargesPerFrame(t *testing.T) {
	const limit = 4096
	k, err := New(Config{Pollers: 1, Writers: 1, MaxQueueBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ln := listen(t)
	_, s := pair(t, ln)
	c, err := k.NewConn(s, &recorder{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Drop(EndClientGone)
	empty := TextFrame(nil)
	queued := 0
	for c.Send(empty) == nil {
		queued++
		if queued > limit {
			break
		}
	}
	if max := limit / (empty.Len() + frameCharge); queued > max {
		t.Fatalf("%d empty frames queued under a %d-byte cap; want at most %d", queued, limit, max)
	}
	if c.State() != Closing || k.Stats().SlowConsumers != 1 {
		t.Fatalf("state %s, slow consumers %d; want closing, 1", c.State(), k.Stats().SlowConsumers)
	}
}
