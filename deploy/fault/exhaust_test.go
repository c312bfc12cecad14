package fault_test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// readHeaderTimeout is the http.Server's ReadHeaderTimeout in gateway.New:
// the deadline that ends a request whose headers never complete.
const readHeaderTimeout = 10 * time.Second

// usage is what the process holds, from its own /metrics.
type usage struct{ fds, goroutines, rss float64 }

func measure(t *testing.T, h *testenv.Herald) usage {
	t.Helper()
	return usage{
		fds:        metric(t, h, "process_open_fds"),
		goroutines: metric(t, h, "go_goroutines"),
		rss:        metric(t, h, "process_resident_memory_bytes"),
	}
}

// waitBaseline polls until descriptors and goroutines are back to base
// (with a little room for the scrape itself).
func waitBaseline(t *testing.T, h *testenv.Herald, base usage, within time.Duration) usage {
	t.Helper()
	var u usage
	testenv.Eventually(t, within, func() error {
		u = measure(t, h)
		if u.fds > base.fds+2 || u.goroutines > base.goroutines+5 {
			return fmt.Errorf("fds %v goroutines %v; baseline %v and %v", u.fds, u.goroutines, base.fds, base.goroutines)
		}
		return nil
	})
	return u
}

// TestSlowloris holds 50 token requests and 50 /ws requests open, sending
// their headers at 1 byte per second: the header deadline closes every one,
// a normal client is served meanwhile, and descriptors, goroutines and
// memory return to their baseline.
func TestSlowloris(t *testing.T) {
	const perPath = 50
	h := startNode(t, nil, "slow")
	base := measure(t, h)

	type slowConn struct {
		c      net.Conn
		closed atomic.Int64 // unix nanos when the server closed it
	}
	var conns []*slowConn
	starts := []string{"POST /api/ws/token HTTP/1.1\r\n", "GET /ws?token=x HTTP/1.1\r\n"}
	for _, line := range starts {
		for range perPath {
			c, err := net.Dial("tcp", h.Addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := c.Write([]byte(line)); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, &slowConn{c: c})
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, sc := range conns {
		wg.Go(func() { // learns when the server closes the connection
			buf := make([]byte, 512)
			sc.c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 10*time.Second))
			for {
				if _, err := sc.c.Read(buf); err != nil {
					sc.closed.Store(time.Now().UnixNano())
					return
				}
			}
		})
	}
	// One header byte per second on every connection, at most 25 rounds.
	header := []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
	during := base
	for i := 0; i < 25; i++ {
		open := 0
		for _, sc := range conns {
			if sc.closed.Load() == 0 {
				open++
				sc.c.Write(header[i%len(header) : i%len(header)+1])
			}
		}
		if open == 0 {
			break
		}
		if i == 3 {
			during = measure(t, h)
			if _, err := token(t, h.Addr, "normal"); err != nil {
				t.Errorf("a normal client was not served during the slowloris: %v", err)
			}
		}
		time.Sleep(time.Second)
	}
	wg.Wait()
	var last time.Duration
	for _, sc := range conns {
		at := sc.closed.Load()
		if at == 0 {
			t.Fatal("a slow connection was never closed")
		}
		last = max(last, time.Unix(0, at).Sub(start))
	}
	if last > readHeaderTimeout+slack {
		t.Errorf("the last slow connection was closed after %v, want within %v", last, readHeaderTimeout+slack)
	}
	httpClient.CloseIdleConnections()
	after := waitBaseline(t, h, base, 10*time.Second)
	figure(t, "slowloris_closed_all", fmt.Sprintf("%d connections, last closed after %v", len(conns), last.Round(100*time.Millisecond)))
	figure(t, "slowloris_usage", fmt.Sprintf("fds %v -> %v -> %v, goroutines %v -> %v -> %v, RSS %.1f -> %.1f -> %.1f MiB",
		base.fds, during.fds, after.fds, base.goroutines, during.goroutines, after.goroutines,
		base.rss/(1<<20), during.rss/(1<<20), after.rss/(1<<20)))
	if during.rss-base.rss > 64<<20 {
		t.Errorf("RSS grew by %.1f MiB for %d slow connections", (during.rss-base.rss)/(1<<20), len(conns))
	}
}

// TestEMFILE runs herald with a descriptor limit of 64 and opens 150
// connections: accepts fail with EMFILE, the accept loop backs off instead
// of spinning, herald serves again once descriptors are free, and returns
// to its baseline.
func TestEMFILE(t *testing.T) {
	const limit, n = 64, 150
	addr := testenv.FreeAddr(t)
	h := testenv.StartHeraldFDLimit(t, heraldBin, addr, limit, nodeEnv(nil, addr, "emfile"))
	base := measure(t, h)
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", h.Addr, 2*time.Second)
		if err != nil {
			break // the listen backlog is full: as far as a client can push
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	// Wait until the process sits at its limit.
	testenv.Eventually(t, 30*time.Second, func() error {
		if v, err := h.Metric("process_open_fds"); err != nil || v < limit-2 {
			return fmt.Errorf("process_open_fds = %v (%v), want at least %d", v, err, limit-2)
		}
		return nil
	})
	// Free descriptors: close most client connections.
	for _, c := range conns[:len(conns)*3/4] {
		c.Close()
	}
	var backoffs float64
	testenv.Eventually(t, 15*time.Second, func() error {
		v, err := h.Metric("herald_accept_backoffs_total")
		if err != nil {
			return err
		}
		if v == 0 {
			return fmt.Errorf("no accept backoff counted")
		}
		backoffs = v
		return nil
	})
	testenv.Eventually(t, 15*time.Second, func() error {
		_, err := token(t, h.Addr, "after")
		return err
	})
	for _, c := range conns {
		c.Close()
	}
	httpClient.CloseIdleConnections()
	after := waitBaseline(t, h, base, readHeaderTimeout+slack)
	figure(t, "emfile", fmt.Sprintf("limit %d, %d connections opened, %v accept backoffs, fds %v -> %v, goroutines %v -> %v",
		limit, len(conns), backoffs, base.fds, after.fds, base.goroutines, after.goroutines))
	if got := h.Status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz = %d after the exhaustion", got)
	}
}
