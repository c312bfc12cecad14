package presence_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/herald-gw/herald/fanout/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	ttl      = 400 * time.Millisecond
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
			r, err := presence.NewRedis(rdb, presence.Config{Prefix: "t:", TTL: ttl, Debounce: debounce})
			if err != nil {
				t.Fatal(err)
			}
			sub := rdb.Subscribe(context.Background(), "t:presence")
			if _, err := sub.Receive(context.Background()); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for msg := range sub.Channel() {
					e, err := presence.ParseEvent([]byte(msg.Payload))
					if err != nil {
						t.Errorf("event %q: %v", msg.Payload, err)
						continue
					}
					ev.add(e)
				}
			}()
			t.Cleanup(func() { sub.Close(); <-done })
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			s := tc.new(t, ev)
			testStore(t, s, ev)
		})
	}
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
	// debounce: no event.
	apply("a", presence.Op{User: "u1", Delta: -1})
	apply("b", presence.Op{User: "u1", Delta: -1}, presence.Op{User: "u1", Delta: 1})
	for range 4 { // nothing is expected: give a wrong event time to appear
		time.Sleep(debounce / 2)
		refresh("b", 5)
		refresh("a", 1)
	}
	waitEvents("u1:true", "u2:true")
	// Gone for good: offline after the debounce.
	if got := apply("b", presence.Op{User: "u1", Delta: -1}); got[0] != 0 {
		t.Fatalf("last socket closed: count %v; want 0", got)
	}
	waitEvents("u1:true", "u2:true", "u1:false")

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
	waitEvents("u1:true", "u2:true", "u1:false", "u2:false")

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
