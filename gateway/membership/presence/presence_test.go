package presence_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A replica's entry lives for ttl without a refresh. The tests refresh
// every few milliseconds, but a loaded 2-core machine under the race
// detector stalls a goroutine for several hundred: 400 ms made a live
// replica expire (and Refresh report Rejoined) in 1 of 5 runs.
const (
	ttl      = 1500 * time.Millisecond
	debounce = 200 * time.Millisecond
)

// events collects presence events, from Redis pub/sub or Memory's callback.
type events struct {
	mu  sync.Mutex
	got []presence.Event
}

func (e *events) add(ev presence.Event) {
	e.mu.Lock()
	e.got = append(e.got, ev)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, fmt.Sprintf("%s:%v", ev.UserID, ev.Online))
	}
	return out
}

func TestStores(t *testing.T) {
	for _, tc := range []struct {
		name string
		new  func(t *testing.T, ev *events) presence.Store
	}{
		{"memory", func(t *testing.T, ev *events) presence.Store {
			m, err := presence.NewMemory(presence.Config{TTL: ttl, Debounce: debounce, OnEvent: ev.add})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return m
		}},
		{"redis", func(t *testing.T, ev *events) presence.Store {
			rdb := testenv.StartRedis(t).Client()
			return redisStore(t, rdb, rdb, ev)
		}},
		// Every script runs on the master of the presence keys' slot; the
		// events are subscribed to on another master, which Redis Cluster
		// relays a classic PUBLISH to.
		{"redis cluster", func(t *testing.T, ev *events) presence.Store {
			rc := testenv.StartRedisCluster(t, 3, 0)
			return redisStore(t, rc.Client(), otherMaster(t, rc), ev)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			s := tc.new(t, ev)
			testStore(t, s, ev)
		})
	}
}

// redisStore returns a Redis store on client, prefix "t:", whose events
// reach ev through a subscription on sub.
func redisStore(t *testing.T, client redis.UniversalClient, sub *redis.Client, ev *events) presence.Store {
	r, err := presence.NewRedis(client, presence.Config{Prefix: "t:", TTL: ttl, Debounce: debounce})
	if err != nil {
		t.Fatal(err)
	}
	ps := sub.Subscribe(context.Background(), "t:presence")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ps.Channel() {
			e, err := presence.ParseEvent([]byte(msg.Payload))
			if err != nil {
				t.Errorf("event %q: %v", msg.Payload, err)
				continue
			}
			ev.add(e)
		}
	}()
	t.Cleanup(func() { ps.Close(); <-done })
	return r
}

// otherMaster returns a client of a master that does not hold the
// presence keys.
func otherMaster(t *testing.T, rc *testenv.RedisCluster) *redis.Client {
	home := rc.MasterOf(rc.KeySlot("{presence}"))
	for _, m := range rc.Masters() {
		if m != home {
			return rc.Node(m).Client()
		}
	}
	t.Fatalf("no master besides %s", home)
	return nil
}

// fill writes every kind of presence key under the prefix "k:": replica a
// with u1 online, and u2 online then pending its offline check.
func fill(t *testing.T, client redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	s, err := presence.NewRedis(client, presence.Config{Prefix: "k:", TTL: time.Minute, Debounce: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, "a", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, "a", []presence.Op{{User: "u1", Delta: 1}, {User: "u2", Delta: 1}, {User: "u2", Delta: -1}}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "u1"); err != nil || n != 1 {
		t.Fatalf("Count(u1) = %d, %v; want 1", n, err)
	}
}

// TestRedisKeyNames: one Redis (and Sentinel) keeps the names deployments
// already hold; a Redis Cluster puts every presence key in one slot, the
// slot of the hash tag {presence}, on one master.
func TestRedisKeyNames(t *testing.T) {
	ctx := context.Background()
	names := func(base string) []string {
		var out []string
		for _, n := range []string{"nodes", "online", "pending", "sockets", "users:a"} {
			out = append(out, base+n)
		}
		return out
	}
	t.Run("redis", func(t *testing.T) {
		rdb := testenv.StartRedis(t).Client()
		fill(t, rdb)
		keys, err := rdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if want := names("k:presence:"); !slices.Equal(keys, want) {
			t.Fatalf("keys %v; want %v", keys, want)
		}
	})
	t.Run("redis cluster", func(t *testing.T) {
		rc := testenv.StartRedisCluster(t, 3, 0)
		fill(t, rc.Client())
		home := rc.MasterOf(rc.KeySlot("{presence}"))
		for _, m := range rc.Masters() {
			keys, err := rc.Node(m).Client().Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			var want []string
			if m == home {
				want = names("k:presence:{presence}:")
			}
			if !slices.Equal(keys, want) {
				t.Errorf("keys on %s %v; want %v", m, keys, want)
			}
		}
	})
}

func testStore(t *testing.T, s presence.Store, ev *events) {
	ctx := context.Background()
	apply := func(node string, ops ...presence.Op) []int {
		t.Helper()
		got, err := s.Apply(ctx, node, ops)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	count := func(user string) int {
		t.Helper()
		n, err := s.Count(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	refresh := func(node string, n int) map[string]int {
		t.Helper()
		m, err := s.Refresh(ctx, node, n)
		if err != nil {
			t.Fatal(err)
		}
		if m.Rejoined {
			t.Fatalf("Refresh(%s) reports its entry was gone", node)
		}
		return m.Sockets
	}
	bAlive := true
	waitEvents := func(want ...string) {
		t.Helper()
		testenv.Eventually(t, 3*time.Second, func() error {
			if bAlive {
				refresh("b", 5)
			}
			refresh("a", 1) // runs the due offline checks (Redis)
			if got := ev.list(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("events %v; want %v", got, want)
			}
			return nil
		})
	}
	for _, n := range []string{"a", "b"} {
		if err := s.Join(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	refresh("b", 5)
	if got := refresh("a", 3); got["a"] != 3 || got["b"] != 5 || len(got) != 2 {
		t.Fatalf("Refresh = %v; want a:3 b:5", got)
	}

	// 0 -> 1 -> 2 sockets across two replicas: one online event.
	if got := apply("a", presence.Op{User: "u1", Delta: 1}); got[0] != 1 {
		t.Fatalf("first socket: count %v; want 1", got)
	}
	if got := apply("b", presence.Op{User: "u1", Delta: 1}, presence.Op{User: "u2", Delta: 1}); fmt.Sprint(got) != "[2 1]" {
		t.Fatalf("counts %v; want [2 1]", got)
	}
	if n := count("u1"); n != 2 {
		t.Fatalf("Count(u1) = %d; want 2", n)
	}
	// The cluster-wide cap refuses a third socket and leaves the count.
	if got := apply("a", presence.Op{User: "u1", Delta: 1, Cap: 2}); got[0] != -1 {
		t.Fatalf("third socket under cap 2: %v; want -1", got)
	}
	if n := count("u1"); n != 2 {
		t.Fatalf("Count(u1) after a refusal = %d; want 2", n)
	}
	waitEvents("u1:true", "u2:true")

	// A reload: the last socket closes and another opens within the
	// debounce: no event. A probe user, online and gone just after, has its
	// offline check due after u1's: once the probe's offline event is out,
	// u1's check has run, and published nothing.
	apply("a", presence.Op{User: "u1", Delta: -1})
	apply("b", presence.Op{User: "u1", Delta: -1}, presence.Op{User: "u1", Delta: 1})
	apply("a", presence.Op{User: "probe", Delta: 1}, presence.Op{User: "probe", Delta: -1})
	waitEvents("u1:true", "u2:true", "probe:true", "probe:false")
	// Gone for good: offline after the debounce.
	if got := apply("b", presence.Op{User: "u1", Delta: -1}); got[0] != 0 {
		t.Fatalf("last socket closed: count %v; want 0", got)
	}
	waitEvents("u1:true", "u2:true", "probe:true", "probe:false", "u1:false")

	// b crashes (stops refreshing): its users drop out after the TTL and
	// u2, whose only socket was there, goes offline.
	bAlive = false
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := refresh("a", 1); len(got) != 1 {
			return fmt.Errorf("live replicas %v; want only a", got)
		}
		return nil
	})
	if n := count("u2"); n != 0 {
		t.Fatalf("Count(u2) after its replica expired = %d; want 0", n)
	}
	waitEvents("u1:true", "u2:true", "probe:true", "probe:false", "u1:false", "u2:false")

	// b comes back after its entry expired without a Join (a replica that
	// stalled): Refresh says so, so that it rebuilds its counts.
	if m, err := s.Refresh(ctx, "b", 2); err != nil || !m.Rejoined {
		t.Fatalf("Refresh of an expired replica: %+v, %v; want Rejoined", m, err)
	}

	// A replica that leaves stops counting at once.
	if err := s.Leave(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Join(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := refresh("b", 7); len(got) != 1 || got["b"] != 7 {
		t.Fatalf("after a left: %v; want b:7 only", got)
	}
}
