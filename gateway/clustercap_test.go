package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/gateway/membership/presence"
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

// TestClusterCapEvictOldest: with the evict-oldest policy a user at the
// cluster-wide cap is welcomed on any replica, and the user's oldest
// socket, on whichever replica holds it, is closed with 4008 and a reason.
func TestClusterCapEvictOldest(t *testing.T) {
	testenv.NoLeaks(t)
	a, b := capReplicas(t, func(c *gateway.Config) { c.ClusterCapPolicy = gateway.CapEvictOldest })
	steps := []struct {
		name   string
		on     *harness
		evicts int // index of the step whose socket is closed; -1 none
	}{
		{"first socket, on a", a, -1},
		{"second, on b: evicts a's", b, 0},
		{"third, on a: evicts b's", a, 1},
		{"fourth, on a: evicts the third, on the same replica", a, 2},
	}
	socks := make([]*testenv.WSClient, len(steps))
	for i, st := range steps {
		got, c := firstFrame(st.on, st.on.token("u"))
		if c != nil {
			defer c.Close()
		}
		if got != "welcome" {
			t.Fatalf("%s: %s; want welcome", st.name, got)
		}
		socks[i] = c
		if st.evicts < 0 {
			continue
		}
		cf, err := socks[st.evicts].ExpectClose(10 * time.Second)
		if err != nil || cf.Code != 4008 || cf.Reason != "replaced_by_newer_socket" {
			t.Fatalf("%s: the oldest socket got %+v, %v; want close 4008 replaced_by_newer_socket", st.name, cf, err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		n, err := a.srv.CountConnections(context.Background(), "u")
		if err != nil || n != 1 {
			return fmt.Errorf("cluster-wide count of u = %d, %v; want 1", n, err)
		}
		return nil
	})
	// The newest socket is the one left, and it still receives.
	if err := b.srv.SendToUser(context.Background(), "u", []byte(`{"type":"note"}`)); err != nil {
		t.Fatal(err)
	}
	if msg, err := socks[len(socks)-1].ReadText(10 * time.Second); err != nil || msg != `{"type":"note"}` {
		t.Fatalf("newest socket: %q, %v", msg, err)
	}
}
