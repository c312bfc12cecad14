package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// Redis killed and restarted: Ready goes false then true, every
// subscription comes back, Resync is called once.
func TestRedisRestart(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	reg := prometheus.NewRegistry()
	log, logs := observedLogger(t)
	b, rec := startBroker(t, srv.Client(), Config{
		HealthInterval:   200 * time.Millisecond,
		UnsubscribeGrace: 50 * time.Millisecond,
		Registerer:       reg,
		Logger:           log,
	})
	fanouttest.WaitReady(t, b)
	admin := srv.Client()
	ctx := context.Background()

	const users = 1500
	names := make([]string, users)
	chans := make([]<-chan struct{}, users)
	for i := range users {
		names[i] = "user:r" + strconv.Itoa(i)
		chans[i] = b.Subscribe("r" + strconv.Itoa(i))
	}
	for i, ch := range chans {
		fanouttest.WaitClosed(t, ch, 10*time.Second, names[i])
	}
	if rec.Resyncs() != 0 {
		t.Fatal("Resync called on the first connection")
	}

	srv.Kill()
	testenv.Eventually(t, 5*time.Second, func() error {
		if b.Ready() {
			return errors.New("still ready after Redis died")
		}
		return nil
	})
	// While Redis is down: a new user, and one that leaves.
	down := b.Subscribe("new")
	b.Unsubscribe("r0")
	if err := b.Publish(ctx, publish.User("r1"), []byte("x")); err == nil {
		t.Fatal("Publish succeeded with Redis down")
	}
	// A few reconnection attempts, each a chance to confirm it wrongly.
	failed := logs.FilterMessage("redis pub/sub connection failed").Len()
	waitLogged(t, logs, "redis pub/sub connection failed", failed+3)
	if fanouttest.IsClosed(down) {
		t.Fatal("a subscription made while Redis was down was confirmed")
	}

	srv.Start()
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, down, 5*time.Second, "new")
	// Ready is set before Resync is called, on the receive loop: wait for
	// the call rather than race it.
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := rec.Resyncs(); n != 1 {
			return fmt.Errorf("Resync called %d times, want 1", n)
		}
		return nil
	})
	counts := numSub(t, admin, append(names, "user:new", "broadcast", "herald:control")...)
	for name, n := range counts {
		want := int64(1)
		if name == "user:r0" {
			want = 0
		}
		if n != want {
			t.Fatalf("NUMSUB %s = %d after the restart, want %d", name, n, want)
		}
	}
	if n := admin.PubSubNumPat(ctx).Val(); n != 2 {
		t.Fatalf("NUMPAT = %d, want 2", n)
	}
	for _, to := range []string{"user:r1", "user:new", "socket:n1.s"} {
		if err := admin.Publish(ctx, to, "after restart").Err(); err != nil {
			t.Fatal(err)
		}
	}
	rec.WaitFor(t, publish.User("r1"), "after restart")
	rec.WaitFor(t, publish.User("new"), "after restart")
	rec.WaitFor(t, publish.Socket("n1.s"), "after restart")
	if v, _ := fanouttest.MetricValue(t, reg, "herald_broker_reconnects_total", "", ""); v != 1 {
		t.Fatalf("reconnects_total = %v, want 1", v)
	}
	if v, _ := fanouttest.MetricValue(t, reg, "herald_broker_subscriptions", "", ""); v != users {
		t.Fatalf("subscriptions = %v, want %d", v, users)
	}
	if v, _ := fanouttest.MetricValue(t, reg, "herald_broker_up", "", ""); v != 1 {
		t.Fatalf("up = %v, want 1", v)
	}
	if n := rec.Resyncs(); n != 1 {
		t.Fatalf("Resync called %d times, want 1", n)
	}
}

// Redis unreachable at Start: the broker keeps trying, and is ready once
// Redis comes; that is no recovery, so no Resync.
func TestRedisStartWhileDown(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	srv.Kill()
	log, logs := observedLogger(t)
	b, rec := startBroker(t, srv.Client(), Config{Logger: log})
	ch := b.Subscribe("42")
	waitLogged(t, logs, "redis pub/sub connection failed", 3)
	if b.Ready() || fanouttest.IsClosed(ch) {
		t.Fatalf("with Redis down: ready %v, subscription confirmed %v", b.Ready(), fanouttest.IsClosed(ch))
	}
	srv.Start()
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, ch, 5*time.Second, "42")
	if err := srv.Client().Publish(context.Background(), "user:42", "hi").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User("42"), "hi")
	if n := rec.Resyncs(); n != 0 {
		t.Fatalf("Resync called %d times, want 0", n)
	}
}

// The only user wanted at connection time is dropped before the flusher
// subscribes it: no confirmation is left to wait for, and the broker still
// becomes ready.
func TestRedisReadyWhenResyncEmpties(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	srv.Kill()
	b, _ := startBroker(t, srv.Client(), Config{FlushInterval: 500 * time.Millisecond, UnsubscribeGrace: -1})
	b.Subscribe("a")
	srv.Start()
	testenv.Eventually(t, 5*time.Second, func() error {
		b.s.mu.Lock()
		defer b.s.mu.Unlock()
		if b.s.pc == nil || b.s.staticPending > 0 || b.s.subs.resyncPending != 1 {
			return errors.New("not connected with one user to resubscribe")
		}
		return nil
	})
	b.Unsubscribe("a")
	fanouttest.WaitReady(t, b)
	if n := commandCalls(t, srv.Client(), "subscribe"); n != 1 {
		t.Fatalf("%d SUBSCRIBE commands, want only the static one", n)
	}
}

// A connection that goes silent is detected by the health check, within
// two intervals: at the first tick that finds its PING unanswered and
// nothing read since the tick before. The bound is counted in PINGs, not
// read off the wall clock, which a loaded machine stretches: at most one
// PING goes unanswered before the connection is replaced.
func TestRedisHealthCheck(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	px := startProxy(t, srv.Addr())
	const interval = 150 * time.Millisecond
	b, rec := startBroker(t, newClient(t, px.Addr(), 0), Config{HealthInterval: interval})
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")

	px.freeze()
	start := time.Now()
	// Resync is the trace of a recovery: not ready, then ready again.
	testenv.Eventually(t, 30*time.Second, func() error {
		if rec.Resyncs() == 0 {
			return errors.New("no recovery")
		}
		return nil
	})
	t.Logf("silent connection replaced after %s (health interval %s)", time.Since(start), interval)
	if n := px.frozenPings(); n > 1 {
		t.Errorf("%d PINGs unanswered before the silent connection was replaced, want at most 1", n)
	}
	if !b.Ready() {
		t.Fatal("not ready after Resync")
	}
	pub := srv.Client()
	if n := pub.PubSubNumSub(context.Background(), "user:42").Val()["user:42"]; n != 1 {
		t.Fatalf("NUMSUB = %d after the recovery, want 1", n)
	}
	if err := pub.Publish(context.Background(), "user:42", "after").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User("42"), "after")
}

// A connection killed by the server while Redis stays up is replaced by the
// broker, not by go-redis: one resubscription, in batches.
func TestRedisClientKilled(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	admin := srv.Client()
	ctx := context.Background()
	b, rec := startBroker(t, srv.Client(), Config{BatchSize: 100})
	fanouttest.WaitReady(t, b)
	for i := range 1000 {
		b.Subscribe("k" + strconv.Itoa(i))
	}
	fanouttest.WaitClosed(t, b.Subscribe("k0"), 10*time.Second, "k0")
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := admin.PubSubNumSub(ctx, "user:k999").Val()["user:k999"]; n != 1 {
			return fmt.Errorf("k999 not subscribed")
		}
		return nil
	})
	before := commandCalls(t, admin, "subscribe")
	beforeP := commandCalls(t, admin, "psubscribe")
	if err := admin.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if rec.Resyncs() != 1 {
			return errors.New("not resynced")
		}
		return nil
	})
	// The static SUBSCRIBE and PSUBSCRIBE, then the users in 10 batches of
	// 100. go-redis's own resubscription would add one command naming all.
	if subs := commandCalls(t, admin, "subscribe") - before; subs != 11 {
		t.Errorf("%d SUBSCRIBE commands to resubscribe 1000 users in batches of 100, want 11", subs)
	}
	if psubs := commandCalls(t, admin, "psubscribe") - beforeP; psubs != 1 {
		t.Errorf("%d PSUBSCRIBE commands after the reconnection, want 1", psubs)
	}
	if !b.Ready() {
		t.Fatal("not ready after Resync")
	}
}

// Close while Redis is unreachable and the broker is backing off.
func TestRedisCloseWhileDown(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	srv.Kill()
	log, logs := observedLogger(t)
	b, _ := startBroker(t, srv.Client(), Config{ReconnectMin: time.Minute, ReconnectMax: time.Minute, Logger: log})
	b.Subscribe("42")
	waitLogged(t, logs, "redis pub/sub reconnecting", 1) // in a backoff of a minute
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		b.Close()
	}()
	select {
	case <-closed:
		t.Logf("Close returned after %s while backing off for a minute", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("Close waited for the backoff")
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 5 * time.Second
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{7, 2500 * time.Millisecond, 5 * time.Second},
		{1000, 2500 * time.Millisecond, 5 * time.Second},
	}
	for _, tt := range tests {
		seen := make(map[time.Duration]bool)
		for range 200 {
			d := backoff(tt.attempt, lo, hi)
			if d < tt.min || d > tt.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tt.attempt, d, tt.min, tt.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("backoff(%d): only %d distinct values in 200: not jittered", tt.attempt, len(seen))
		}
	}
}
