package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// expectNothing checks that c receives no message for a short while.
// expectNothingBefore reads c's next message, which must be marker: the
// test sent marker after what c must not get, on the same ordered path
// (the same broker connection, the same kind of target), so anything
// wrongly delivered arrives first. Waiting a while for nothing would pass
// on a machine too busy to deliver it in time.
func expectNothingBefore(t *testing.T, c *testenv.WSClient, marker, name string) {
	t.Helper()
	msg, err := c.ReadText(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v, want the marker %q", name, err, marker)
	}
	if msg != marker {
		t.Errorf("%s received %q before the marker %q, want nothing", name, msg, marker)
	}
}

func expectText(t *testing.T, c *testenv.WSClient, want, name string) {
	t.Helper()
	msg, err := c.ReadText(5 * time.Second)
	if err != nil || msg != want {
		t.Fatalf("%s got %q %v, want %q", name, msg, err, want)
	}
}

func TestInProcessAPI(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	ctx := context.Background()
	a1, wa1 := h.connect("alice")
	a2, _ := h.connect("alice")
	a3, _ := h.connect("alice")
	b1, wb := h.connect("bob")

	if h.srv.Sockets() != 4 || h.srv.Users() != 2 || len(h.srv.UserSockets("alice")) != 3 {
		t.Fatalf("counts = %d sockets, %d users, %d for alice; want 4, 2, 3",
			h.srv.Sockets(), h.srv.Users(), len(h.srv.UserSockets("alice")))
	}

	if err := h.srv.SendToUser(ctx, "alice", []byte(`{"type":"friend_request"}`)); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*testenv.WSClient{a1, a2, a3} {
		expectText(t, c, `{"type":"friend_request"}`, fmt.Sprintf("alice's socket %d", i+1))
	}
	if err := h.srv.SendToUser(ctx, "bob", []byte("marker 1")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, b1, "marker 1", "bob")

	if err := h.srv.SendToSocket(ctx, wb.SocketID, []byte("just bob's socket")); err != nil {
		t.Fatal(err)
	}
	expectText(t, b1, "just bob's socket", "bob")
	if err := h.srv.SendToSocket(ctx, wa1.SocketID, []byte("marker 2")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, a1, "marker 2", "alice")

	if err := h.srv.Broadcast(ctx, []byte("everyone")); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*testenv.WSClient{a1, a2, a3, b1} {
		expectText(t, c, "everyone", fmt.Sprintf("socket %d", i+1))
	}

	if err := h.srv.BroadcastExcept(ctx, "alice", []byte("not alice")); err != nil {
		t.Fatal(err)
	}
	expectText(t, b1, "not alice", "bob")
	if err := h.srv.BroadcastExcept(ctx, "bob", []byte("marker 3")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, a2, "marker 3", "alice")

	if err := h.srv.DisconnectUser(ctx, "alice", "logout"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*testenv.WSClient{a1, a2, a3} {
		expectClose(t, c, 4000, "disconnected")
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if h.srv.Users() != 1 || h.srv.Sockets() != 1 {
			return errors.New("alice's sockets are still registered")
		}
		return nil
	})
	if err := h.srv.SendToUser(ctx, "bob", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	expectText(t, b1, "still here", "bob")
}

// TestUndeliverableMessagesAreDropped: a broadcast larger than a socket can
// carry and one that is not valid UTF-8 are dropped and counted; the fast
// sockets they were meant for stay open and get the next valid message.
func TestUndeliverableMessagesAreDropped(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	h := start(t, harnessOpts{})
	ctx := context.Background()
	var clients []*testenv.WSClient
	for i := range 4 {
		c, _ := h.connect(fmt.Sprint("u", i))
		clients = append(clients, c)
	}
	tests := []struct {
		name, reason string
		payload      []byte
	}{
		{"larger than the queue cap", "too_large", []byte(strings.Repeat("x", 300<<10))},
		{"larger than the largest relayed message", "too_large", []byte(strings.Repeat("y", gateway.DefaultMaxQueueBytes/2+1))},
		{"invalid UTF-8", "invalid_utf8", []byte("{\"type\":\"bad\",\"s\":\"\xff\xfe\"}")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.srv.Broadcast(ctx, tt.payload); err != nil {
				t.Fatal(err)
			}
			next := fmt.Sprintf(`{"type":"next","n":%d}`, i)
			if err := h.srv.Broadcast(ctx, []byte(next)); err != nil {
				t.Fatal(err)
			}
			for j, c := range clients {
				expectText(t, c, next, fmt.Sprint("socket ", j))
			}
		})
	}
	for reason, want := range map[string]float64{"too_large": 2, "invalid_utf8": 1} {
		if got := h.metric(`herald_messages_dropped_total{reason="` + reason + `"}`); got != want {
			t.Errorf("dropped{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if n := h.srv.Sockets(); n != len(clients) {
		t.Errorf("%d sockets open, want %d", n, len(clients))
	}
	if got := h.metric(`herald_disconnects_total{code="4009"}`); got != 0 {
		t.Errorf("%v sockets shed as slow consumers, want 0", got)
	}
	if len(h.logs.lines("message dropped")) == 0 {
		t.Error("no log line for the dropped messages")
	}
}

// TestDeliveryMetrics: messages are counted by kind, and the writes that
// delivered them feed the latency histogram.
func TestDeliveryMetrics(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	h := start(t, harnessOpts{})
	ctx := context.Background()
	c, w := h.connect("alice")
	sends := []func() error{
		func() error { return h.srv.SendToUser(ctx, "alice", []byte("1")) },
		func() error { return h.srv.SendToUser(ctx, "alice", []byte("2")) },
		func() error { return h.srv.SendToSocket(ctx, w.SocketID, []byte("3")) },
		func() error { return h.srv.Broadcast(ctx, []byte("4")) },
		func() error { return h.srv.BroadcastExcept(ctx, "bob", []byte("5")) },
	}
	for i, send := range sends {
		if err := send(); err != nil {
			t.Fatal(err)
		}
		expectText(t, c, fmt.Sprint(i+1), "alice")
	}
	if err := h.srv.DisconnectUser(ctx, "nobody", "test"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		for series, want := range map[string]float64{
			`herald_messages_total{kind="user"}`:      2,
			`herald_messages_total{kind="socket"}`:    1,
			`herald_messages_total{kind="broadcast"}`: 2,
			`herald_messages_total{kind="control"}`:   1,
		} {
			if got := h.metric(series); got != want {
				return fmt.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		// One observation per socket write: at least one, at most one per message.
		if n := h.metric("herald_delivery_latency_seconds_count"); n < 1 || n > 5 {
			return fmt.Errorf("latency observations = %v, want 1 to 5", n)
		}
		return nil
	})
	if sum := h.metric("herald_delivery_latency_seconds_sum"); sum <= 0 || sum > 5 {
		t.Errorf("latency sum %v s, want a small positive figure", sum)
	}
}
