package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/replay"
)

// TestNewRefusesTakenMembershipMetrics: a registerer that already holds a
// rebalancing metric makes New return an error; it used to panic (through
// MustRegister) after the broker had started.
func TestNewRefusesTakenMembershipMetrics(t *testing.T) {
	authn, err := auth.New(context.Background(), auth.Config{SessionSecret: sessionSecret, WSTokenSecret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	store, err := presence.NewMemory(presence.Config{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_rebalance_shed_total", Help: "taken"}))
	srv, err := gateway.New(gateway.Config{
		Auth: authn, Replay: replay.NewMemory(replay.MemoryConfig{}), Broker: fanout.NewMemory(fanout.MemoryConfig{}),
		Presence: store, Rebalance: true, Registerer: reg,
	})
	if err == nil {
		_ = srv.Shutdown(context.Background())
		t.Fatal("New accepted a registerer whose rebalancing metric is taken")
	}
}
