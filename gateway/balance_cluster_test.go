package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestRebalance runs two gateways sharing one presence store. A holds 10
// sockets, B none: A sheds sockets (reconnect frame with after_ms below the
// drain window, then 1012) and the test reconnects each to B, as a load
// balancer would, until A is within the margin. A never sheds below the
// average: it ends at exactly 5 and B at 5. The per-user counts are
// cluster-wide throughout.
func TestRebalance(t *testing.T) {
	mem, err := presence.NewMemory(presence.Config{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	store := &refreshCounter{Store: mem}
	opts := func(node string, rebalance bool) harnessOpts {
		return harnessOpts{gw: func(c *gateway.Config) {
			c.NodeID = node
			c.Presence = store
			c.PresenceInterval = 20 * time.Millisecond
			c.UserPresence = true
			c.Rebalance = rebalance
			c.RebalanceMargin = 0.1
			c.RebalanceRate = 1 // 10 sockets: one shed every 100ms; the test stays short
			c.DrainWindow = 100 * time.Millisecond
		}}
	}
	a := start(t, opts("a", true))
	b := start(t, opts("b", true))

	type shed struct {
		i       int
		afterMS int64
		code    int
	}
	sheds := make(chan shed, 10)
	var wg sync.WaitGroup
	var onA []*testenv.WSClient
	for i := range 10 {
		c, w := a.connect(fmt.Sprint("u", i%4))
		if w.SocketID[:2] != "a." {
			t.Fatalf("socket %s not on a", w.SocketID)
		}
		onA = append(onA, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			afterMS := int64(-1)
			for {
				msg, err := c.ReadText(30 * time.Second)
				var cf *testenv.CloseFrame
				if errors.As(err, &cf) {
					sheds <- shed{i, afterMS, cf.Code}
					return
				}
				if err != nil {
					return // closed by the test
				}
				var r struct {
					Type    string `json:"type"`
					AfterMS int64  `json:"after_ms"`
				}
				if json.Unmarshal([]byte(msg), &r) == nil && r.Type == "reconnect" {
					afterMS = r.AfterMS
				}
			}
		}()
	}
	t.Cleanup(func() {
		for _, c := range onA {
			c.Close()
		}
		wg.Wait()
	})

	moved := 0
	deadline := time.After(10 * time.Second)
	for a.srv.Sockets() != 5 || b.srv.Sockets() != 5 {
		select {
		case s := <-sheds:
			if s.code != 1012 || s.afterMS < 0 || s.afterMS >= 100 {
				t.Fatalf("shed socket %d: after_ms %d, close %d; want after_ms in [0, 100) then 1012", s.i, s.afterMS, s.code)
			}
			b.connect(fmt.Sprint("u", s.i%4))
			moved++
		case <-time.After(20 * time.Millisecond):
			// No shed yet, or the last shed socket is still leaving
			// a's registry: look at the counts again.
		case <-deadline:
			t.Fatalf("a holds %d sockets, b %d, after 10s; want 5 and 5", a.srv.Sockets(), b.srv.Sockets())
		}
	}
	// Balanced: nothing more is shed (a is at the average), over several
	// refreshes of a (each reconsiders its balance) after the shed sockets
	// stopped counting as in flight.
	since := store.refreshesOfA.Load()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := store.refreshesOfA.Load() - since; n < 10 {
			return fmt.Errorf("a refreshed %d times since it was balanced; want 10", n)
		}
		return nil
	})
	select {
	case s := <-sheds:
		t.Fatalf("socket %d shed below the average (a %d, b %d)", s.i, a.srv.Sockets(), b.srv.Sockets())
	default:
	}
	if moved != 5 {
		t.Errorf("%d sockets moved; want 5", moved)
	}
	testenv.Eventually(t, 2*time.Second, func() error {
		if got := a.metric("herald_rebalance_shed_total"); got != 5 {
			return fmt.Errorf("a: herald_rebalance_shed_total = %v; want 5", got)
		}
		if got := b.metric("herald_rebalance_shed_total"); got != 0 {
			return fmt.Errorf("b: herald_rebalance_shed_total = %v; want 0", got)
		}
		if got := a.metric("herald_cluster_average_sockets"); got != 5 {
			return fmt.Errorf("a: herald_cluster_average_sockets = %v; want 5", got)
		}
		if got := b.metric("herald_cluster_replicas"); got != 2 {
			return fmt.Errorf("b: herald_cluster_replicas = %v; want 2", got)
		}
		return nil
	})

	// CountConnections is cluster-wide: u0 holds sockets 0, 4 and 8,
	// wherever they are now.
	testenv.Eventually(t, 2*time.Second, func() error {
		for _, h := range []*harness{a, b} {
			n, err := h.srv.CountConnections(context.Background(), "u0")
			if err != nil || n != 3 {
				return fmt.Errorf("%s: CountConnections(u0) = %d, %v; want 3", h.srv.NodeID(), n, err)
			}
		}
		return nil
	})

	// A draining replica leaves the membership at once, not after its TTL
	// (10s): the others stop counting it in the average.
	b.shutdown(5 * time.Second)
	testenv.Eventually(t, 2*time.Second, func() error {
		if got := a.metric("herald_cluster_replicas"); got != 1 {
			return fmt.Errorf("a: herald_cluster_replicas = %v after b drained; want 1", got)
		}
		return nil
	})
}

// refreshCounter is a presence store that counts the refreshes of node
// "a": each is a rebalancing decision.
type refreshCounter struct {
	presence.Store
	refreshesOfA atomic.Int64
}

func (r *refreshCounter) Refresh(ctx context.Context, node string, sockets int) (presence.Replicas, error) {
	if node == "a" {
		defer r.refreshesOfA.Add(1)
	}
	return r.Store.Refresh(ctx, node, sockets)
}
