package fanout

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

func startMemory(t *testing.T, reg prometheus.Registerer) (*Memory, *fanouttest.Recorder) {
	t.Helper()
	b := NewMemory(MemoryConfig{Logger: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), Registerer: reg})
	rec := &fanouttest.Recorder{}
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, rec
}

func TestMemoryUserOnlyWhileSubscribed(t *testing.T) {
	testenv.NoLeaks(t)
	b, rec := startMemory(t, nil)
	ctx := context.Background()

	mustPublish(t, b, publish.User("42"), "before")
	if ch := b.Subscribe("42"); !fanouttest.IsClosed(ch) {
		t.Fatal("Subscribe returned an open channel")
	}
	b.Subscribe("42") // a second socket's worth
	mustPublish(t, b, publish.User("42"), "during")
	mustPublish(t, b, publish.User("43"), "other user")
	b.Unsubscribe("42")
	mustPublish(t, b, publish.User("42"), "one left")
	b.Unsubscribe("42")
	mustPublish(t, b, publish.User("42"), "after")
	b.Unsubscribe("42") // unbalanced: ignored

	want := []string{"during", "one left"}
	if got := rec.Payloads(publish.User("42")); !equalStrings(got, want) {
		t.Fatalf("user 42 got %q, want %q", got, want)
	}
	if got := rec.Payloads(publish.User("43")); len(got) != 0 {
		t.Fatalf("unsubscribed user 43 got %q", got)
	}
	if err := b.Publish(ctx, publish.User(""), []byte("x")); !errors.Is(err, publish.ErrInvalidTarget) {
		t.Fatalf("Publish to an empty user = %v, want ErrInvalidTarget", err)
	}
}

func TestMemoryRoutes(t *testing.T) {
	tests := []struct {
		name string
		to   publish.Target
	}{
		{"socket", publish.Socket("n1.s1")},
		{"broadcast", publish.All()},
		{"broadcast except", publish.AllExcept("42")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.NoLeaks(t)
			b, rec := startMemory(t, nil)
			mustPublish(t, b, tt.to, "hello")
			if !rec.Has(tt.to, "hello") {
				t.Fatalf("%+v not delivered", tt.to)
			}
		})
	}
}

func TestMemoryControl(t *testing.T) {
	testenv.NoLeaks(t)
	b, rec := startMemory(t, nil)
	ctx := context.Background()
	c := publish.Control{Op: publish.OpDisconnect, UserID: "42", Reason: "logout"}
	if err := b.PublishControl(ctx, c); err != nil {
		t.Fatalf("PublishControl: %v", err)
	}
	if got := rec.Controls(); len(got) != 1 || got[0] != c {
		t.Fatalf("controls = %+v, want [%+v]", got, c)
	}
	for _, bad := range []publish.Control{{Op: "explode", UserID: "42"}, {Op: publish.OpDisconnect}} {
		if err := b.PublishControl(ctx, bad); !errors.Is(err, publish.ErrInvalidControl) {
			t.Errorf("PublishControl(%+v) = %v, want ErrInvalidControl", bad, err)
		}
	}
}

func TestMemoryClose(t *testing.T) {
	testenv.NoLeaks(t)
	b, rec := startMemory(t, nil)
	ctx := context.Background()
	b.Subscribe("42")
	if !b.Ready() {
		t.Fatal("not ready before Close")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if b.Ready() {
		t.Fatal("ready after Close")
	}
	for _, to := range []publish.Target{publish.User("42"), publish.Socket("n1.s"), publish.All()} {
		if err := b.Publish(ctx, to, []byte("late")); !errors.Is(err, ErrClosed) {
			t.Errorf("Publish(%+v) after Close = %v, want ErrClosed", to, err)
		}
	}
	if err := b.PublishControl(ctx, publish.Control{Op: publish.OpDisconnect, UserID: "42"}); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishControl after Close = %v, want ErrClosed", err)
	}
	if n := rec.Count(); n != 0 {
		t.Fatalf("%d messages delivered after Close", n)
	}
	if err := b.Start(rec); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

// blockingHandler blocks in Deliver until release is closed.
type blockingHandler struct {
	fanouttest.Recorder
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHandler) Deliver(to publish.Target, payload []byte) {
	close(h.entered)
	<-h.release
	h.Recorder.Deliver(to, payload)
}

// Close waits for a delivery in progress: nothing is delivered after it
// returns.
func TestMemoryCloseWaitsForDelivery(t *testing.T) {
	testenv.NoLeaks(t)
	b := NewMemory(MemoryConfig{})
	h := &blockingHandler{entered: make(chan struct{}), release: make(chan struct{})}
	if err := b.Start(h); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Publish(context.Background(), publish.All(), []byte("x")) })
	<-h.entered

	closed := make(chan struct{})
	go func() {
		_ = b.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a delivery was in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(h.release)
	<-closed
	wg.Wait()
	if h.Count() != 1 {
		t.Fatalf("delivered %d, want 1", h.Count())
	}
}

// reentrantHandler unsubscribes from within Control, as the gateway does
// when a disconnect closes a user's last socket.
type reentrantHandler struct {
	fanouttest.Recorder
	b *Memory
}

func (h *reentrantHandler) Control(c publish.Control) {
	h.b.Unsubscribe(c.UserID)
	_ = h.b.Publish(context.Background(), publish.Socket("n1.x"), []byte("from handler"))
	h.Recorder.Control(c)
}

func TestMemoryHandlerMayCallBroker(t *testing.T) {
	testenv.NoLeaks(t)
	b := NewMemory(MemoryConfig{})
	defer b.Close()
	h := &reentrantHandler{b: b}
	if err := b.Start(h); err != nil {
		t.Fatal(err)
	}
	b.Subscribe("42")
	done := make(chan error, 1)
	go func() {
		done <- b.PublishControl(context.Background(), publish.Control{Op: publish.OpDisconnect, UserID: "42"})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishControl deadlocked with a handler that calls the broker")
	}
	mustPublish(t, b, publish.User("42"), "after disconnect")
	if h.Has(publish.User("42"), "after disconnect") || !h.Has(publish.Socket("n1.x"), "from handler") {
		t.Fatal("the handler's calls did not take effect")
	}
}

func TestMemoryStartMisuse(t *testing.T) {
	testenv.NoLeaks(t)
	b := NewMemory(MemoryConfig{})
	defer b.Close()
	if err := b.Start(nil); err == nil {
		t.Fatal("Start(nil) succeeded")
	}
	// Before Start, messages go nowhere.
	mustPublish(t, b, publish.All(), "nobody")
	if err := b.Start(&fanouttest.Recorder{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(&fanouttest.Recorder{}); err == nil {
		t.Fatal("a second Start succeeded")
	}
}

func TestMemoryMetrics(t *testing.T) {
	testenv.NoLeaks(t)
	reg := prometheus.NewRegistry()
	b, _ := startMemory(t, reg)
	for _, r := range DropReasons {
		if v, ok := fanouttest.MetricValue(t, reg, "herald_broker_dropped_total", "reason", r); !ok || v != 0 {
			t.Errorf("dropped{reason=%q} = %v, %v; want 0, present", r, v, ok)
		}
	}
	b.Subscribe("1")
	b.Subscribe("2")
	mustPublish(t, b, publish.User("1"), "x")
	mustPublish(t, b, publish.All(), "x")
	checks := []struct {
		name, label, value string
		want               float64
	}{
		{"herald_broker_messages_total", "kind", "user", 1},
		{"herald_broker_messages_total", "kind", "broadcast", 1},
		{"herald_broker_messages_total", "kind", "socket", 0},
		{"herald_broker_messages_total", "kind", "control", 0},
		{"herald_broker_subscriptions", "", "", 2},
		{"herald_broker_up", "", "", 1},
		{"herald_broker_reconnects_total", "", "", 0},
	}
	for _, c := range checks {
		if v, ok := fanouttest.MetricValue(t, reg, c.name, c.label, c.value); !ok || v != c.want {
			t.Errorf("%s{%s=%q} = %v, %v; want %v", c.name, c.label, c.value, v, ok, c.want)
		}
	}
	// A second broker on the same registry reuses the collectors.
	b2 := NewMemory(MemoryConfig{Registerer: reg})
	b2.Close()
}

func mustPublish(t *testing.T, b Broker, to publish.Target, payload string) {
	t.Helper()
	if err := b.Publish(context.Background(), to, []byte(payload)); err != nil {
		t.Fatalf("Publish(%+v): %v", to, err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
