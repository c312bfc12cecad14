package gateway_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestBroadcastToManySockets: a broadcast to more sockets than the
// gateway writes from one goroutine (it splits them by registry shard over
// the cores) reaches every socket once, in publish order, and skips the
// excepted user's sockets.
func TestBroadcastToManySockets(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	const sockets, messages = 300, 20 // over the 256 from which a broadcast is split
	clients := make([]*testenv.WSClient, sockets)
	for i := range clients {
		clients[i], _ = h.connect(fmt.Sprint("b", i))
	}
	ctx := context.Background()
	for i := range messages {
		if err := h.srv.BroadcastExcept(ctx, "b0", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients[1:] {
		wg.Go(func() {
			for n := range messages {
				want := fmt.Sprintf(`{"n":%d}`, n)
				if msg, err := c.ReadText(10 * time.Second); err != nil || msg != want {
					t.Errorf("socket %d: got %q %v, want %q", i+1, msg, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := h.srv.Broadcast(ctx, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, clients[0], "marker", "the excepted user")
}
