package gateway_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestStressSmallReceiveBuffers runs a few hundred sockets whose clients
// read steadily through a small receive buffer, so that the servers' writes
// keep filling the kernel buffers and the sockets keep waiting for epoll's
// writable report. Bursts of broadcasts come no faster than the clients
// read on average. No socket may be closed, no write may time out, and
// every client must get every message exactly once, in order.
//
// The soak build tag runs it longer (go test -tags soak -run TestStress).
func TestStressSmallReceiveBuffers(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	sc := stressScale
	h := start(t, harnessOpts{sendBuffer: 8 << 10, gw: func(c *gateway.Config) {
		c.WriteTimeout = 3 * time.Second                     // a lost wake-up shows as a write timeout
		c.MaxQueueBytes = 4 * sc.burst * (sc.size + 16 + 64) // + the core's 64-byte charge per queued frame
		// Pings go out all the time and must be answered: a client
		// that stopped answering is closed after 10 s, at every size.
		c.PingInterval = time.Second
		c.IdleTimeout = 10 * time.Second
	}})
	dialer := testenv.WSDialer{RecvBuffer: 4 << 10}
	type client struct {
		c    *testenv.WSClient
		got  int // messages received in order; owned by its reader
		err  error
		seen chan int
		done chan struct{} // closed when its reader returns
	}
	clients := make([]*client, sc.sockets)
	for i := range clients {
		c, _ := h.connectWith(dialer, fmt.Sprint("s", i%(sc.sockets/4)))
		clients[i] = &client{c: c, seen: make(chan int, 1), done: make(chan struct{})}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	defer func() {
		close(stop)
		for _, cl := range clients {
			cl.c.Close()
		}
		wg.Wait()
	}()
	total := sc.bursts * sc.burst
	for _, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(cl.done)
			for cl.got < total {
				f, err := cl.c.ReadFrame(30 * time.Second)
				if err != nil {
					cl.err = fmt.Errorf("after %d messages: %w", cl.got, err)
					return
				}
				if f.Op != ws.OpText {
					// A client that never answers a ping is dead to the
					// server: past the idle timeout (2 min, which the soak
					// size outlasts) it is closed with 1001 idle_timeout.
					if f.Op == ws.OpPing {
						if err := cl.c.WriteFrame(ws.OpPong, f.Payload); err != nil {
							cl.err = fmt.Errorf("pong after %d messages: %w", cl.got, err)
							return
						}
						continue
					}
					if f.Op == ws.OpClose {
						code, reason := ws.ParseCloseFrameData(f.Payload)
						cl.err = fmt.Errorf("closed by the server with %d %s after %d messages", code, reason, cl.got)
						return
					}
					continue
				}
				if len(f.Payload) != sc.size {
					cl.err = fmt.Errorf("message %d: %d bytes, want %d", cl.got, len(f.Payload), sc.size)
					return
				}
				if n, _ := strconv.ParseUint(string(f.Payload[:8]), 16, 32); int(n) != cl.got {
					cl.err = fmt.Errorf("got message %d, want %d", n, cl.got)
					return
				}
				cl.got++
				if cl.got%sc.burst == 0 {
					select {
					case cl.seen <- cl.got:
					case <-stop:
						return
					}
				}
			}
		}()
	}

	payload := make([]byte, sc.size)
	for i := range payload[8:] {
		payload[8+i] = 'a' + byte(i%26)
	}
	ctx := context.Background()
	for b := range sc.bursts {
		for m := range sc.burst {
			p := append([]byte(nil), payload...)
			copy(p, fmt.Sprintf("%08x", b*sc.burst+m)) // text frames carry UTF-8
			if err := h.srv.Broadcast(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		// The next burst waits for every client to have read the one
		// before the last: two bursts at most are in flight.
		if b == 0 {
			continue
		}
		for i, cl := range clients {
			select {
			case <-cl.seen:
			case <-cl.done:
				t.Fatalf("client %d: %v", i, cl.err)
			case <-time.After(30 * time.Second):
				t.Fatalf("client %d stuck at %d of %d messages", i, cl.got, (b+1)*sc.burst)
			}
		}
	}
	wg.Wait()
	for i, cl := range clients {
		if cl.err != nil {
			t.Errorf("client %d: %v", i, cl.err)
		}
	}
	for _, series := range []string{"herald_write_timeouts_total", "herald_slow_consumers_total"} {
		if v := h.metric(series); v != 0 {
			t.Errorf("%s = %v, want 0", series, v)
		}
	}
	if n := h.srv.Sockets(); n != sc.sockets {
		t.Errorf("%d sockets open, want %d", n, sc.sockets)
	}
}
