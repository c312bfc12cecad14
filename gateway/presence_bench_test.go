package gateway_test

import (
	"fmt"
	"testing"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// BenchmarkHandshakePresence measures what user presence adds to a socket's
// handshake (token request, upgrade, welcome, then close) on loopback: off,
// on (per-user counts queued off the handshake), and with the cluster-wide
// cap (one Presence round trip inside it), Presence in a real redis-server.
func BenchmarkHandshakePresence(b *testing.B) {
	rdb := testenv.StartRedis(b).Client()
	for _, tc := range []struct {
		name string
		cfg  func(*gateway.Config, presence.Store)
	}{
		{"off", func(*gateway.Config, presence.Store) {}},
		{"presence", func(c *gateway.Config, p presence.Store) { c.Presence, c.UserPresence = p, true }},
		{"presence_and_cluster_cap", func(c *gateway.Config, p presence.Store) {
			c.Presence, c.UserPresence, c.ClusterMaxSocketsPerUser = p, true, 64
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p, err := presence.NewRedis(rdb, presence.Config{Prefix: tc.name + ":"})
			if err != nil {
				b.Fatal(err)
			}
			h := start(b, harnessOpts{gw: func(c *gateway.Config) { c.NodeID = "n1"; tc.cfg(c, p) }})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				c, _ := h.connect(fmt.Sprint("u", i))
				c.Close()
				i++
			}
		})
	}
}
