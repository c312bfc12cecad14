package loadtest_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/loadtest"
	"github.com/herald-gw/herald/loadtest/floor"
)

// startFloor runs the floor server (a minimal server speaking the contract)
// on a private redis-server: enough to drive the load tester's whole
// machinery in-process, without building herald.
func startFloor(t *testing.T) (*floor.Server, *testenv.Redis) {
	t.Helper()
	r := testenv.StartRedis(t)
	f, err := floor.New(context.Background(), floor.Config{Addr: "127.0.0.1:0", Redis: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, r
}

func TestRunInProcess(t *testing.T) {
	testenv.NoLeaks(t)
	f, r := startFloor(t)
	var progress bytes.Buffer
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Targets:       []string{"http://" + f.Addr()},
		Sockets:       300,
		Users:         200,
		SessionSecret: []byte(strings.Repeat("s", 32)),
		Redis:         r.URL(),
		Scenarios:     []string{"connect", "fanout", "broadcast", "churn"},
		Duration:      1500 * time.Millisecond,
		Rate:          2000,
		ChurnShare:    0.2,
		Procs:         2,
		Progress:      &progress,
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !rep.OK || rep.Sockets.OK != 300 || rep.Delivery == nil || rep.Broadcast == nil {
		t.Fatalf("report:\n%s", text.String())
	}
	d := rep.Delivery
	if d.Sent < 2000 || d.Delivered != d.Sent || d.Lost != 0 || d.Duplicates != 0 || d.OutOfOrder != 0 {
		t.Errorf("delivery %+v\n%s", *d, text.String())
	}
	if rep.Broadcast.Sockets != 300 || rep.Broadcast.LastMs <= 0 {
		t.Errorf("broadcast %+v", *rep.Broadcast)
	}
	var churn *loadtest.ScenarioReport
	for i := range rep.Scenarios {
		if rep.Scenarios[i].Name == "churn" {
			churn = &rep.Scenarios[i]
		}
	}
	if churn == nil || churn.Reconnects < 30 || churn.Up != 300 || churn.Delivery.Lost != 0 {
		t.Errorf("churn: %+v", churn)
	}
	if rep.Server.CPUUsPerHandshake <= 0 || rep.Server.Error != "" {
		t.Errorf("server cost from the floor's /metrics: %+v", rep.Server)
	}
	if !strings.Contains(progress.String(), "up ") {
		t.Errorf("no progress lines: %q", progress.String())
	}
}

// TestRunStopsAtDeadline: the deadline is a hard cap, even in the middle of
// a scenario much longer than it.
func TestRunStopsAtDeadline(t *testing.T) {
	testenv.NoLeaks(t)
	f, r := startFloor(t)
	start := time.Now()
	rep, err := loadtest.Run(context.Background(), loadtest.Config{
		Targets:       []string{"http://" + f.Addr()},
		Sockets:       20,
		SessionSecret: []byte(strings.Repeat("s", 32)),
		Redis:         r.URL(),
		Scenarios:     []string{"connect", "fanout"},
		Duration:      time.Minute,
		Rate:          100,
		Deadline:      2 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the run took %s with a 2s deadline", took)
	}
	if rep == nil || rep.OK || len(rep.Scenarios) != 1 || rep.Sockets.OK != 20 {
		t.Errorf("report after the deadline: %+v", rep)
	}
}
