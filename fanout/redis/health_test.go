package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// slowHandler is a recorder that takes per for every message, as a replica
// short of CPU or memory does: the broker reads its connection more slowly
// than Redis writes to it.
type slowHandler struct {
	*fanouttest.Recorder
	per time.Duration
}

func (h slowHandler) Deliver(to publish.Target, payload []byte) {
	time.Sleep(h.per) // the cost of a slow replica, not a wait for an event
	h.Recorder.Deliver(to, payload)
}

// TestRedisBusyLinkAlive: on a subscribed connection the health PING's
// answer queues behind every message already on its way, so a replica
// that reads a backlog slower than Redis wrote it sees its PONG late. A
// link that keeps delivering is alive: the broker must neither drop it nor
// resync its sockets, and every message arrives once, in order.
func TestRedisBusyLinkAlive(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	const (
		interval = 100 * time.Millisecond
		n        = 400
		per      = 3 * time.Millisecond // n × per: a backlog of many intervals
	)
	reg := prometheus.NewRegistry()
	b, err := New(srv.Client(), Config{
		NodeID: "n1", HealthInterval: interval, Logger: testLogger(t), Registerer: reg,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := &fanouttest.Recorder{}
	if err := b.Start(slowHandler{rec, per}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("busy"), 5*time.Second, "busy")

	// A machine that stops the process for an interval stops the reader
	// too: nothing is read for a whole interval, which is the health
	// check's very definition of a dead link.
	stalls := testenv.StartStallMeter(t)

	// The whole backlog at once, in one pipeline: Redis writes it to the
	// subscriber far faster than the handler takes it.
	ctx := context.Background()
	pipe := srv.Client().Pipeline()
	for i := range n {
		pipe.Publish(ctx, "user:busy", strconv.Itoa(i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// Until every message arrived, or the broker gave up on the link (its
	// resync): whichever comes first.
	testenv.Eventually(t, time.Minute, func() error {
		if got := len(rec.Payloads(publish.User("busy"))); got < n && rec.Resyncs() == 0 {
			return fmt.Errorf("%d of %d messages delivered", got, n)
		}
		return nil
	})
	got := rec.Payloads(publish.User("busy"))
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("message %d = %q, want %d: lost or reordered (%d delivered)", i, p, i, len(got))
		}
	}
	r := rec.Resyncs()
	v, _ := fanouttest.MetricValue(t, reg, "herald_broker_reconnects_total", "", "")
	if r == 0 && v == 0 {
		return
	}
	stalls.Stop()
	if stall := stalls.Longest(); stall >= interval/2 {
		t.Skipf("%d resyncs, %v reconnects, but the machine stopped the process for %v (health interval %v): no steady reading to judge", r, v, stall, interval)
	}
	if r != 0 {
		t.Errorf("%d resyncs: a busy link was declared dead (longest stall of the process %v)", r, stalls.Longest())
	}
	if v != 0 {
		t.Errorf("herald_broker_reconnects_total = %v, want 0", v)
	}
}

// TestRedisOutputBufferDropLogged: Redis closes a subscriber whose output
// buffer passes client-output-buffer-limit pubsub. The broker reconnects
// (and resyncs), and its log says plainly that this is the likely cause.
func TestRedisOutputBufferDropLogged(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	ctx := context.Background()
	admin := srv.Client()
	if err := admin.ConfigSet(ctx, "client-output-buffer-limit", "pubsub 256kb 128kb 1").Err(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	rec := &fanouttest.Recorder{}
	b, err := New(srv.Client(), Config{
		NodeID: "n1", HealthInterval: time.Second, Logger: zap.New(core),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(slowHandler{rec, 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("flood"), 5*time.Second, "flood")

	// 32 MiB at once (beyond what the sockets buffer): far past the 256 KiB hard limit while the handler
	// takes 2 ms a message.
	payload := strings.Repeat("x", 32<<10)
	pipe := admin.Pipeline()
	for range 1024 {
		pipe.Publish(ctx, "user:flood", payload)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if rec.Resyncs() == 0 {
			return errors.New("the subscriber was not dropped and restored")
		}
		return nil
	})
	found := false
	for _, e := range logs.FilterMessage("redis pub/sub connection lost").All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()["hint"]), "client-output-buffer-limit") {
			found = true
		}
	}
	if !found {
		t.Errorf("no connection-lost line names client-output-buffer-limit; lines: %v", logs.FilterMessage("redis pub/sub connection lost").All())
	}
}
