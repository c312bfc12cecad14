package presence_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestEvictOldest: at the cap, the oldest recorded socket, on whichever
// replica, makes room and is uncounted at once; its replica's late -1 then
// changes nothing.
func TestEvictOldest(t *testing.T) {
	for name, newStore := range map[string]func(t *testing.T) presence.Store{
		"memory": func(t *testing.T) presence.Store {
			m, err := presence.NewMemory(presence.Config{TTL: ttl, Debounce: debounce})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return m
		},
		"redis": func(t *testing.T) presence.Store {
			rdb := testenv.StartRedis(t).Client()
			return redisStore(t, rdb, rdb, &events{})
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			for _, n := range []string{"a", "b"} {
				if err := s.Join(ctx, n); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Refresh(ctx, n, 0); err != nil {
					t.Fatal(err)
				}
			}
			apply := func(node string, op presence.Op) int {
				t.Helper()
				got, err := s.Apply(ctx, node, []presence.Op{op})
				if err != nil {
					t.Fatal(err)
				}
				return got[0]
			}
			evict := func(node, sock string) string {
				t.Helper()
				n, ev, err := s.ApplyEvictOldest(ctx, node, presence.Op{User: "u", Delta: 1, Cap: 2, Socket: sock})
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprint(n, ev)
			}
			if got := apply("a", presence.Op{User: "u", Delta: 1, Socket: "a.1"}); got != 1 {
				t.Fatalf("a.1: count %d; want 1", got)
			}
			if got := evict("b", "b.1"); got != "2 []" {
				t.Fatalf("b.1 under the cap: %s; want 2 []", got)
			}
			if got := evict("b", "b.2"); got != "2 [a.1]" {
				t.Fatalf("b.2 at the cap: %s; want 2 [a.1]", got)
			}
			if got := apply("a", presence.Op{User: "u", Delta: -1, Socket: "a.1"}); got != 2 {
				t.Fatalf("a.1 closing after its eviction: count %d; want 2 (unchanged)", got)
			}
			if got := evict("a", "a.2"); got != "2 [b.1]" {
				t.Fatalf("a.2 at the cap: %s; want 2 [b.1]", got)
			}
			if got := apply("b", presence.Op{User: "u", Delta: -1, Socket: "b.2"}); got != 1 {
				t.Fatalf("b.2 closing: count %d; want 1", got)
			}
			// A socket counted without an id is never chosen.
			apply("b", presence.Op{User: "u", Delta: 1})
			if got := evict("a", "a.3"); got != "2 [a.2]" {
				t.Fatalf("a.3: %s; want 2 [a.2]", got)
			}
			// Over the cap with sockets counted without an id: no room can
			// be made, and no socket is evicted for nothing.
			apply("b", presence.Op{User: "u", Delta: 1})
			if got := evict("a", "a.4"); got != "-1 []" {
				t.Fatalf("a.4 with 2 sockets without ids: %s; want -1 []", got)
			}
			if n, err := s.Count(ctx, "u"); err != nil || n != 3 {
				t.Fatalf("count after a refusal: %d, %v; want 3 (a.3 and two without ids)", n, err)
			}
		})
	}
}
