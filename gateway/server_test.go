package gateway_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
)

// TestNewReportsMetricsConflicts: a Registerer that already holds herald's
// metrics makes New return an error; it used to panic in MustRegister.
func TestNewReportsMetricsConflicts(t *testing.T) {
	testenv.NoLeaks(t)
	ctx := context.Background()
	authn, err := auth.New(ctx, auth.Config{SessionSecret: sessionSecret, WSTokenSecret: wsSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer authn.Close()
	store := replay.NewMemory(replay.MemoryConfig{})
	defer store.Close()
	reg := prometheus.NewRegistry()
	newCfg := func() gateway.Config {
		return gateway.Config{Auth: authn, Replay: store, Broker: fanout.NewMemory(fanout.MemoryConfig{}), Registerer: reg}
	}
	first := newCfg()
	defer first.Broker.Close()
	srv, err := gateway.New(first)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(ctx)
	second := newCfg()
	defer second.Broker.Close()
	if _, err := gateway.New(second); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("New with the same Registerer = %v, want a metrics registration error", err)
	}
}
