package gateway_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// countingDrain reads everything a socket receives until it closes, adding
// the bytes to total.
func countingDrain(c *testenv.WSClient, total *atomic.Int64) {
	_ = c.Conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Conn.Read(buf)
		total.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// BenchmarkFanout measures one publish through the in-process API (memory
// broker) to every socket of its target, over real loopback sockets whose
// clients read as fast as they can. The clock stops when every frame has
// reached its client. ns/op is per publish; frames/s counts deliveries.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range []struct {
		name    string
		users   int
		perUser int
		all     bool
	}{
		{"user_16_sockets", 1, 16, false},
		{"broadcast_1000_sockets", 100, 10, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := start(b, harnessOpts{gw: func(c *gateway.Config) { c.MaxQueueBytes = 64 << 20 }})
			var received atomic.Int64
			for u := range tc.users {
				for range tc.perUser {
					c, _ := h.connect(fmt.Sprintf("u%d", u))
					go countingDrain(c, &received)
				}
			}
			payload := []byte(`{"type":"friend_request","id":"5f0c2b1e-0d7e-4c1a-9d55-7f1a2b3c4d5e","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if tc.all {
					_ = h.srv.Broadcast(ctx, payload)
				} else {
					_ = h.srv.SendToUser(ctx, "u0", payload)
				}
			}
			sockets := tc.perUser
			if tc.all {
				sockets *= tc.users
			}
			want := int64(b.N) * int64(sockets) * int64(len(payload)+4)
			for received.Load() < want {
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*sockets)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
