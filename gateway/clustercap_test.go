package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/presence"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// capReplicas starts two replicas on one Redis sharing user presence with
// a cluster-wide cap of one socket per user, and waits until each is live.
func capReplicas(t *testing.T, mod func(*gateway.Config)) (a, b *harness) {
	t.Helper()
	r := testenv.StartRedis(t)
	rc := r.Client()
	replica := func(node string) *harness {
		p, err := presence.NewRedis(rc, presence.Config{TTL: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return startReplica(t, r, node, func(c *gateway.Config) {
			c.Presence, c.UserPresence = p, true
			c.PresenceInterval = 100 * time.Millisecond
			c.ClusterMaxSocketsPerUser = 1
			if mod != nil {
				mod(c)
			}
		})
	}
	a, b = replica("a"), replica("b")
	testenv.Eventually(t, 10*time.Second, func() error {
		nodes := rc.ZRange(context.Background(), "presence:nodes", 0, -1).Val()
		if !slices.Contains(nodes, "a") || !slices.Contains(nodes, "b") {
			return fmt.Errorf("live replicas %v; want a and b", nodes)
		}
		return nil
	})
	return a, b
}

// firstFrame opens a socket with token on h and returns its first frame's
// outcome: "welcome", or "close <code>".
func firstFrame(h *harness, token string) (string, *testenv.WSClient) {
	c, err := h.dial(token)
	if err != nil {
		return "dial: " + err.Error(), nil
	}
	msg, err := c.ReadText(10 * time.Second)
	if err != nil {
		if code := closeCode(err); code != 0 {
			return fmt.Sprintf("close %d", code), c
		}
		return err.Error(), c
	}
	var w struct{ Type string }
	_ = json.Unmarshal([]byte(msg), &w)
	return w.Type, c
}

// TestClusterCapRace: two handshakes of one user racing on two replicas
// with a cluster-wide cap of one: exactly one is welcomed, every time.
func TestClusterCapRace(t *testing.T) {
	testenv.NoLeaks(t)
	a, b := capReplicas(t, nil)
	const rounds = 20
	for i := range rounds {
		user := fmt.Sprint("racer", i)
		tokA, tokB := a.token(user), b.token(user)
		var wg sync.WaitGroup
		var got [2]string
		var conns [2]*testenv.WSClient
		start := make(chan struct{})
		for j, h := range []*harness{a, b} {
			tok := []string{tokA, tokB}[j]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[j], conns[j] = firstFrame(h, tok)
			}()
		}
		close(start)
		wg.Wait()
		for _, c := range conns {
			if c != nil {
				defer c.Close()
			}
		}
		welcomed := 0
		for _, g := range got {
			if g == "welcome" {
				welcomed++
			} else if g != "close 4008" {
				t.Fatalf("round %d: %v; want one welcome and one close 4008", i, got)
			}
		}
		if welcomed != 1 {
			t.Fatalf("round %d: %v; want exactly one welcome under a cluster-wide cap of 1", i, got)
		}
	}
}
