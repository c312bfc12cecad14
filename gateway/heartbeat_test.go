package gateway_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestHeartbeat(t *testing.T) {
	testenv.NoLeaks(t)
	const ping, idle = 100 * time.Millisecond, 300 * time.Millisecond
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
		if took := time.Since(start); took < 2*ping {
			t.Errorf("3 pings in %s, want them %s apart", took, ping)
		}
	})

	t.Run("a client that answers stays", func(t *testing.T) {
		c, _ := h.connect("answering")
		// ReadText answers every ping; nothing else arrives, so it returns
		// at its deadline, three idle timeouts later.
		if msg, err := c.ReadText(3 * idle); !isTimeout(err) {
			t.Fatalf("answering client got %q %v, want only pings", msg, err)
		}
		if n := len(h.srv.UserSockets("answering")); n != 1 {
			t.Fatalf("answering client has %d sockets, want 1", n)
		}
	})

	t.Run("a client that stops answering is reaped", func(t *testing.T) {
		c, _ := h.connect("dead")
		c.NoPong = true
		start := time.Now()
		testenv.Eventually(t, 5*time.Second, func() error {
			if len(h.srv.UserSockets("dead")) != 0 {
				return errors.New("still registered")
			}
			return nil
		})
		// Reaped within ping interval + idle timeout, plus the sweep's tick.
		if took := time.Since(start); took > ping+idle+500*time.Millisecond {
			t.Errorf("reaped after %s, want within %s", took, ping+idle)
		}
		cf, err := c.ExpectClose(time.Second)
		if err == nil && cf.Code != 1001 {
			t.Errorf("close code %d, want 1001 idle_timeout", cf.Code)
		}
	})
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}
