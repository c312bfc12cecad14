package fault_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestDeadPeersReaped: clients behind a proxy that starts blackholing both
// directions (no FIN, no RST) are reaped by the idle timeout: their pongs
// stop arriving, and close frames go nowhere, so each socket is dropped
// after idle timeout + close timeout (+ one heartbeat tick) at most.
func TestDeadPeersReaped(t *testing.T) {
	const (
		n            = 20
		pingInterval = time.Second
		idleTimeout  = 2 * time.Second
		closeTimeout = time.Second
	)
	h := startNode(t, nil, "peers",
		"HERALD_PING_INTERVAL="+pingInterval.String(),
		"HERALD_IDLE_TIMEOUT="+idleTimeout.String(),
		"HERALD_CLOSE_TIMEOUT="+closeTimeout.String(),
	)
	proxy := testenv.StartProxy(t, h.Addr)
	baseFDs := metric(t, h, "process_open_fds")
	var socks []*sock
	for i := range n {
		tok, err := token(t, h.Addr, "u"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := dialWS(proxy.Addr(), tok)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		socks = append(socks, s)
	}
	// Alive through a few ping rounds: the client answers pings.
	for _, s := range socks {
		if err := s.WriteText(`{"type":"ping"}`); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * pingInterval)
	for _, s := range socks {
		if _, err := readUntil(s, time.Until(deadline)+time.Second, is(`{"type":"pong"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := metric(t, h, "herald_sockets"); got != n {
		t.Fatalf("herald_sockets = %v, want %d", got, n)
	}
	idleBefore := metric(t, h, `herald_disconnects_total{code="1001"}`)
	lostBefore := metric(t, h, `herald_disconnects_total{code="1006"}`)

	proxy.Blackhole(true)
	start := time.Now()
	bound := idleTimeout + closeTimeout + pingInterval/4 + slack
	testenv.Eventually(t, bound, func() error {
		if got := metric(t, h, "herald_sockets"); got != 0 {
			return fmt.Errorf("herald_sockets = %v, want 0", got)
		}
		return nil
	})
	unregistered := time.Since(start)
	// The descriptors go too, once the close handshake has timed out.
	testenv.Eventually(t, bound, func() error {
		if got := metric(t, h, "process_open_fds"); got > baseFDs+2 {
			return fmt.Errorf("process_open_fds = %v, baseline %v", got, baseFDs)
		}
		return nil
	})
	figure(t, "dead_peers_reaped", fmt.Sprintf("%d sockets unregistered in %v, descriptors closed in %v (idle %v + close %v)",
		n, unregistered.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond), idleTimeout, closeTimeout))
	idle := metric(t, h, `herald_disconnects_total{code="1001"}`) - idleBefore
	lost := metric(t, h, `herald_disconnects_total{code="1006"}`) - lostBefore
	if idle+lost != n {
		t.Errorf("disconnects: %v idle_timeout (1001) + %v without handshake (1006), want %d in all", idle, lost, n)
	}
	figure(t, "dead_peers_codes", fmt.Sprintf("1001: %v, 1006: %v", idle, lost))
}
