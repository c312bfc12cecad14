package deploy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestClusterPresence checks the cluster-wide socket count and the presence
// events with three replicas sharing one Redis: a user's sockets on every
// replica are counted together, online and offline are published once per
// 0<->1 transition of the cluster-wide count, a reload (close then reopen
// within the debounce) publishes nothing, the cluster-wide cap refuses the
// socket over it with 4008, and a crashed replica's users go offline once
// its entry expires.
func TestClusterPresence(t *testing.T) {
	const (
		debounce   = 600 * time.Millisecond
		interval   = 200 * time.Millisecond // entries expire after 3 intervals
		maxCluster = 4
	)
	c := startCluster(t,
		"HERALD_PRESENCE=true",
		"HERALD_PRESENCE_DEBOUNCE="+debounce.String(),
		"HERALD_PRESENCE_INTERVAL="+interval.String(),
		fmt.Sprintf("HERALD_MAX_SOCKETS_PER_USER_CLUSTER=%d", maxCluster),
	)
	ctx := context.Background()
	store, err := presence.NewRedis(c.rdb, presence.Config{})
	if err != nil {
		t.Fatal(err)
	}
	count := func(user string) int {
		t.Helper()
		n, err := store.Count(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitCount := func(user string, want int) {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, func() error {
			if n := count(user); n != want {
				return fmt.Errorf("Count(%s) = %d; want %d", user, n, want)
			}
			return nil
		})
	}

	// A backend service's view: the presence channel.
	waitEvents := testenv.PresenceEvents(t, c.rdb, "presence", 5*time.Second)

	// One socket of alice on each replica: counted together, one online.
	var alice []*socket
	for _, node := range c.nodes {
		s := c.mustConnect(t, c.addrs[node], "alice")
		alice = append(alice, s)
	}
	waitCount("alice", 3)
	waitEvents("alice:true")

	// The cluster-wide cap (4): a fourth socket is fine, a fifth is refused
	// with 4008 wherever it lands, and the count stays 4.
	alice = append(alice, c.mustConnect(t, c.addrs["h2"], "alice"))
	tok, err := c.token(c.addrs["h3"], "alice")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := c.dialRaw(c.addrs["h3"], tok, testenv.WSDialer{})
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := ws.ExpectClose(5 * time.Second); err != nil || cf.Code != 4008 {
		t.Fatalf("fifth socket of alice with a cluster-wide cap of %d: %v %v; want close 4008", maxCluster, cf, err)
	}
	waitCount("alice", 4)

	// A reload of bob's only tab: close, reopen within the debounce. No
	// event may appear; erin's only tab on the same replica, closed after
	// bob's, goes offline after its own debounce, which ends after bob's:
	// a wrong event for bob would come first.
	bob := c.mustConnect(t, c.addrs["h1"], "bob")
	waitEvents("alice:true", "bob:true")
	erin := c.mustConnect(t, c.addrs["h1"], "erin")
	waitEvents("alice:true", "bob:true", "erin:true")
	bob.Close()
	waitCount("bob", 0)
	bob = c.mustConnect(t, c.addrs["h3"], "bob")
	waitCount("bob", 1)
	erin.Close()
	waitEvents("alice:true", "bob:true", "erin:true", "erin:false")

	// alice closes every tab: offline once, after the debounce.
	for _, s := range alice {
		s.Close()
	}
	waitCount("alice", 0)
	waitEvents("alice:true", "bob:true", "erin:true", "erin:false", "alice:false")

	// The replica holding bob's socket crashes: its entry expires and bob
	// goes offline; the other replicas keep counting.
	carol := c.mustConnect(t, c.addrs["h1"], "carol")
	waitEvents("alice:true", "bob:true", "erin:true", "erin:false", "alice:false", "carol:true")
	c.procs["h3"].Kill()
	waitCount("bob", 0)
	waitEvents("alice:true", "bob:true", "erin:true", "erin:false", "alice:false", "carol:true", "bob:false")
	if n := count("carol"); n != 1 {
		t.Fatalf("Count(carol) = %d after another replica crashed; want 1", n)
	}

	// Redis restarts empty: each replica sees its entry gone at its next
	// refresh and rebuilds its users' counts from its registry.
	dave := c.mustConnect(t, c.addrs["h2"], "dave")
	waitCount("dave", 1)
	c.redis.Kill()
	c.redis.Start()
	waitCount("carol", 1)
	waitCount("dave", 1)
	carol.Close()
	waitCount("carol", 0)
	_ = dave
}
