package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestRedisClusterPresence runs 2 herald replicas with --presence and a
// cluster-wide cap of 2 on a 3-master Redis Cluster: both see the shared
// membership (2 replicas), a user's sockets are counted across them, a third
// socket gets 4008, the online and offline events reach a subscriber on a
// master that does not hold the presence keys, and a replica over its share
// sheds sockets.
func TestRedisClusterPresence(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3, 0)
	f := startFleet(t, 2,
		"HERALD_REDIS_CLUSTER="+strings.Join(rc.Addrs(), ","),
		"HERALD_PRESENCE=true",
		"HERALD_MAX_SOCKETS_PER_USER_CLUSTER=2",
		"HERALD_PRESENCE_INTERVAL=200ms",
		"HERALD_PRESENCE_DEBOUNCE=300ms",
		"HERALD_REBALANCE_RATE=1",
	)
	f.waitReady(20 * time.Second)
	ctx := context.Background()

	// The events, from a master other than the one the scripts run on.
	home := rc.MasterOf(rc.KeySlot("{presence}"))
	var other string
	for _, m := range rc.Masters() {
		if m != home {
			other = m
		}
	}
	waitEvents := testenv.PresenceEvents(t, rc.Node(other).Client(), "presence", 10*time.Second)

	for i := range f.heralds {
		testenv.Eventually(t, 10*time.Second, func() error {
			if n := f.metric(i, "herald_cluster_replicas"); n != 2 {
				return fmt.Errorf("replica %d: herald_cluster_replicas = %v; want 2", i, n)
			}
			return nil
		})
	}

	// One socket of u1 on each replica: counted across both, one online event.
	var u1 []*testenv.WSClient
	for i := range f.heralds {
		ws, welcome, err := f.dial(i, "u1")
		if err != nil || !strings.Contains(welcome, `"type":"welcome"`) {
			t.Fatalf("u1 on replica %d: %q %v", i, welcome, err)
		}
		t.Cleanup(func() { ws.Close() })
		u1 = append(u1, ws)
	}
	store, err := presence.NewRedis(rc.Client(), presence.Config{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n, err := store.Count(ctx, "u1"); err != nil || n != 2 {
			return fmt.Errorf("Count(u1) = %d, %v; want 2", n, err)
		}
		return nil
	})
	waitEvents("u1:true")

	// The cluster-wide cap: a third socket gets 4008.
	ws, msg, err := f.dial(0, "u1")
	var cf *testenv.CloseFrame
	if !errors.As(err, &cf) || cf.Code != 4008 {
		t.Fatalf("third socket of u1 under a cap of 2: %q %v; want close 4008", msg, err)
	}
	if ws != nil {
		ws.Close()
	}

	// Both sockets close: offline after the debounce, once.
	for _, ws := range u1 {
		ws.Close()
	}
	waitEvents("u1:true", "u1:false")
	if n, err := store.Count(ctx, "u1"); err != nil || n != 0 {
		t.Fatalf("Count(u1) after its sockets closed = %d, %v; want 0", n, err)
	}

	// Rebalancing: 4 sockets on replica 0, none on 1. Replica 0 sheds
	// sockets (reconnect frame, then 1012) and the test reconnects each to
	// replica 1, as a load balancer would, until both hold 2.
	type shedSock struct {
		user string
		code int
	}
	shed := make(chan shedSock, 4)
	for i := range 4 {
		user := fmt.Sprint("r", i)
		ws, welcome, err := f.dial(0, user)
		if err != nil || !strings.Contains(welcome, `"type":"welcome"`) {
			t.Fatalf("%s on replica 0: %q %v", user, welcome, err)
		}
		t.Cleanup(func() { ws.Close() })
		go func() {
			reconnect := false
			for {
				msg, err := ws.ReadText(time.Minute)
				var cf *testenv.CloseFrame
				if errors.As(err, &cf) && reconnect {
					shed <- shedSock{user, cf.Code}
				}
				if err != nil {
					return
				}
				reconnect = reconnect || strings.Contains(msg, `"type":"reconnect"`)
			}
		}()
	}
	for range 2 {
		select {
		case s := <-shed:
			if s.code != 1012 {
				t.Fatalf("shed socket of %s closed with %d; want 1012", s.user, s.code)
			}
			ws, welcome, err := f.dial(1, s.user)
			if err != nil || !strings.Contains(welcome, `"type":"welcome"`) {
				t.Fatalf("%s back on replica 1: %q %v", s.user, welcome, err)
			}
			t.Cleanup(func() { ws.Close() })
		case <-time.After(15 * time.Second):
			t.Fatal("replica 0 shed fewer than 2 sockets")
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for i := range f.heralds {
			if n := f.metric(i, "herald_cluster_average_sockets"); n != 2 {
				return fmt.Errorf("replica %d: herald_cluster_average_sockets = %v; want 2", i, n)
			}
		}
		return nil
	})
	// Room for a wrong extra shed: replica 0 reconsiders its balance at
	// each refresh, and its entry's expiry (Redis' clock) moves on by at
	// least five refresh intervals.
	expiry := func() float64 { return rc.Client().ZScore(ctx, "presence:{presence}:nodes", "h1").Val() }
	since := expiry()
	testenv.Eventually(t, 20*time.Second, func() error {
		if moved := expiry() - since; moved < 5*200 {
			return fmt.Errorf("replica 0's entry moved on by %v ms; want 5 refreshes (1000 ms)", moved)
		}
		return nil
	})
	if n := f.metric(0, "herald_rebalance_shed_total"); n != 2 {
		t.Fatalf("replica 0 shed %v sockets; want 2 (down to the average)", n)
	}
}

// metric returns the value of an unlabelled metric on replica i's
// /metrics, or -1 if it is absent.
func (f *fleet) metric(i int, name string) float64 {
	f.t.Helper()
	resp, err := f.client.Get("http://" + f.heralds[i].Addr + "/metrics")
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				f.t.Fatalf("%s: %v", name, err)
			}
			return n
		}
	}
	return -1
}
