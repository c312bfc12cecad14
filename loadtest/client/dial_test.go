package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestOpenLoopTokenConnsKept: in an open loop, token POSTs are not bounded
// by Concurrency, so the connections a burst of them opened stay open for
// the next burst rather than being closed after one request each (a new
// TCP connection, and a port of the source address, per token).
func TestOpenLoopTokenConnsKept(t *testing.T) {
	const burst = 40
	var conns atomic.Int64
	arrived := make(chan struct{}, burst)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token":"t"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	pl := &Plan{SessionCookie: "s", Concurrency: 4, ArrivalRate: 1000, Sockets: make([]int, 1000)}
	d := newDialer(pl)
	defer d.closeIdle()
	// wave sends burst token POSTs at once: the server holds each until
	// all have arrived, so that they need burst connections.
	wave := func() {
		var wg sync.WaitGroup
		for range burst {
			wg.Go(func() {
				if _, err := d.token(context.Background(), d.clients[0], srv.URL, "x"); err != nil {
					t.Error(err)
				}
			})
		}
		for range burst {
			<-arrived
		}
		for range burst {
			release <- struct{}{}
		}
		wg.Wait()
	}
	wave()
	first := conns.Load()
	wave()
	// Closing all but Concurrency of them would take burst-4 new ones.
	if again := conns.Load() - first; again >= int64(burst-pl.Concurrency) {
		t.Fatalf("the second burst of %d token POSTs opened %d new connections (the first opened %d): the open loop does not keep them", burst, again, first)
	}
}
