package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestHandshakeClosedWhileSubscribing: a socket is disconnected by a
// control command while its subscription is held back past the close
// timeout. It must never be welcomed or activated, and it must not disturb
// a newer socket that got its descriptor number: that one still answers
// pings, and the process stays idle (no epoll loop spinning on a descriptor
// it no longer knows).
func TestHandshakeClosedWhileSubscribing(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	const closeTimeout = 300 * time.Millisecond
	broker := newHoldBroker("held")
	defer broker.Release()
	h := start(t, harnessOpts{broker: broker, gw: func(c *gateway.Config) {
		c.CloseTimeout = closeTimeout
		c.PingInterval = 100 * time.Millisecond // the heartbeat ticks every 25 ms
		c.IdleTimeout = time.Minute
		c.HandshakeTimeout = 20 * time.Second
		c.Pollers = 1 // every socket in the same fd map
	}})
	spare := testenv.SpareFD(t)
	token := h.token("held")
	freshToken := h.token("fresh")
	secondToken := h.token("second")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	held, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldFD := testenv.PeerFD(held.Conn)
	if heldFD < 0 {
		t.Fatal("cannot find the server side of the held socket")
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(h.srv.UserSockets("held")) != 1 {
			return errors.New("held socket not registered yet")
		}
		return nil
	})
	// A probe, disconnected just after the held socket, that never answers
	// its close frame: the heartbeat tears it down at its close deadline,
	// which comes after any the held socket could have.
	probe, _ := h.connect("probe")
	if err := h.srv.DisconnectUser(context.Background(), "held", "logout"); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.DisconnectUser(context.Background(), "probe", "logout"); err != nil {
		t.Fatal(err)
	}
	// Let the close timeout pass while the subscription is still held:
	// nothing the heartbeat does may free the descriptor of a socket whose
	// handshake is still running. The probe's connection ending shows that
	// the heartbeat got that far.
	for {
		f, err := probe.ReadFrame(10 * time.Second)
		if err != nil {
			if isTimeoutErr(err) {
				t.Fatal("the probe was not torn down at its close deadline")
			}
			break // EOF or reset: torn down
		}
		if f.Op != ws.OpClose && f.Op != ws.OpPing {
			t.Fatalf("probe got %v %q, want its close frame", f.Op, f.Payload)
		}
	}

	// A new socket, on the held socket's descriptor number if it was freed.
	dialFresh := func(tok string) (*testenv.WSClient, bool) {
		t.Helper()
		reuse := false
		release := func() {}
		if !fdOpen(heldFD) {
			release = testenv.FreeFDFirst(t, heldFD, spare)
			spare = -1
		}
		c, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(tok), nil)
		release()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if msg, err := c.ReadText(5 * time.Second); err != nil {
			t.Fatalf("welcome: %q %v", msg, err)
		}
		reuse = testenv.PeerFD(c.Conn) == heldFD
		return c, reuse
	}
	fresh, reusedFirst := dialFresh(freshToken)
	t.Logf("socket opened while the held one waited: on its descriptor %d: %v", heldFD, reusedFirst)

	broker.Release()
	// The held socket gets the 4000 close frame and nothing before it.
	f, err := held.ReadFrame(5 * time.Second)
	switch {
	case err != nil:
		t.Errorf("held socket: %v, want the close frame 4000", err)
	case f.Op != ws.OpClose:
		t.Errorf("held socket got %v %q first, want the close frame 4000 (never a welcome)", f.Op, f.Payload)
	default:
		if code, _ := ws.ParseCloseFrameData(f.Payload); code != 4000 {
			t.Errorf("held socket closed with %d, want 4000", code)
		}
		_ = held.WriteFrame(ws.OpClose, f.Payload)
	}

	expectPong := func(c *testenv.WSClient, name string) {
		t.Helper()
		if err := c.WriteText(`{"type":"ping"}`); err != nil {
			t.Fatal(err)
		}
		if msg, err := c.ReadText(5 * time.Second); err != nil || msg != `{"type":"pong"}` {
			t.Fatalf("%s: got %q %v, want a pong", name, msg, err)
		}
	}
	expectPong(fresh, "socket opened while the held one waited")

	// Once the held socket is gone, its descriptor number goes to the next
	// socket, which must work too.
	testenv.Eventually(t, 5*time.Second, func() error {
		if !reusedFirst && fdOpen(heldFD) {
			return fmt.Errorf("descriptor %d still open", heldFD)
		}
		return nil
	})
	second, reused := dialFresh(secondToken)
	if !reused {
		t.Logf("the second socket did not get descriptor %d; the reuse case was not exercised", heldFD)
	}
	expectPong(second, "socket on the reused descriptor")
	expectPong(fresh, "socket opened while the held one waited")

	// Nothing spins: the process is idle between heartbeat ticks.
	before, wall := testenv.CPUTime(), time.Now()
	time.Sleep(time.Second)
	if used, took := testenv.CPUTime()-before, time.Since(wall); used > took/2 {
		t.Errorf("the process used %s of CPU in %s while idle", used, took)
	}
	for _, l := range h.logs.lines("connect") {
		if l["user"] == "held" {
			t.Errorf("the held socket was logged as connected: %v", l)
		}
	}
	if spare >= 0 {
		closeFD(spare)
	}
}

// TestConnectLoggedBeforeWelcome: once a client has read its welcome, its
// socket is logged as connected and counted; the handshake does both
// before it hands the socket to the core.
func TestConnectLoggedBeforeWelcome(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.TokenBurst = 100; c.TokenRate = 100 }})
	const sockets = 40
	for i := range sockets {
		c, w := h.connect("42")
		found := false
		for _, l := range h.logs.lines("connect") {
			found = found || l["socket_id"] == w.SocketID
		}
		if !found {
			t.Fatalf("socket %d (%s) read its welcome before it was logged as connected", i, w.SocketID)
		}
		c.Close()
	}
	if got := h.metric("herald_connects_total"); got != sockets {
		t.Errorf("herald_connects_total = %v, want %d", got, sockets)
	}
}

func isTimeoutErr(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
