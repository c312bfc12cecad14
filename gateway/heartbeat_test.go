package gateway_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestHeartbeat(t *testing.T) {
	testenv.NoLeaks(t)
	// The idle timeout is 20 ping intervals: a client answers each ping
	// within an interval, and the rest is room for a loaded machine to run
	// the client, the poller and the heartbeat late (at 3 intervals, an
	// answering client was closed as idle under load).
	const ping, idle = 50 * time.Millisecond, time.Second
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.PingInterval = ping
		c.IdleTimeout = idle
	}})

	t.Run("pings arrive every interval", func(t *testing.T) {
		c, _ := h.connect("live")
		start := time.Now()
		pings := 0
		for pings < 3 {
			f, err := c.ReadFrame(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if f.Op == ws.OpPing {
				pings++
				c.WriteFrame(ws.OpPong, f.Payload)
			}
		}
		// Two intervals, less the heartbeat's tick and the scheduling
		// of the pinging and the reading goroutines (94 ms was seen for
		// 2 × 50 ms): at least one interval, where a ping every tick
		// would take a quarter of one.
		if took := time.Since(start); took < ping {
			t.Errorf("3 pings in %s, want them about %s apart", took, ping)
		}
	})

	t.Run("a client that answers stays", func(t *testing.T) {
		stalls := testenv.StartStallMeter(t)
		c, _ := h.connect("answering")
		// 30 pings answered, over one and a half idle timeouts: the server
		// kept pinging and never closed the socket meanwhile.
		for pings := 0; pings < 30; {
			f, err := c.ReadFrame(5 * time.Second)
			if err == nil && f.Op == ws.OpPing {
				pings++
				err = c.WriteFrame(ws.OpPong, f.Payload)
			}
			if err == nil && f.Op != ws.OpPing {
				err = fmt.Errorf("%v frame %q", f.Op, f.Payload)
			}
			if err != nil {
				stalls.Stop()
				// An answer late by the idle timeout less a ping interval
				// is no answer: a machine that stopped the process that
				// long closed the socket rightly.
				if stall := stalls.Longest(); stall >= idle-ping {
					t.Skipf("answering client closed after %d pings, but the machine stopped the process for %v (idle timeout %v): %v", pings, stall, idle, err)
				}
				t.Fatalf("answering client: %v after %d pings, want only pings (longest stall %v)\n%s", err, pings, stalls.Longest(), h.logs.String())
			}
		}
		if n := len(h.srv.UserSockets("answering")); n != 1 {
			t.Fatalf("answering client has %d sockets, want 1", n)
		}
	})

	t.Run("a client that stops answering is reaped", func(t *testing.T) {
		start := time.Now() // before anything the client sends
		c, _ := h.connect("dead")
		c.NoPong = true
		testenv.Eventually(t, 5*time.Second, func() error {
			if len(h.srv.UserSockets("dead")) != 0 {
				return errors.New("still registered")
			}
			return nil
		})
		// Reaped after the idle timeout, never before (a loaded machine
		// only makes it later; how soon after is the fault suite's
		// figure, TestDeadPeersReaped).
		if took := time.Since(start); took < idle {
			t.Errorf("reaped after %s, before the idle timeout of %s", took, idle)
		}
		cf, err := c.ExpectClose(time.Second)
		if err == nil && cf.Code != 1001 {
			t.Errorf("close code %d, want 1001 idle_timeout", cf.Code)
		}
	})
}
