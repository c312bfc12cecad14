package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// expectNothing checks that c receives no message for a short while.
func expectNothing(t *testing.T, c *testenv.WSClient, name string) {
	t.Helper()
	if msg, err := c.ReadText(150 * time.Millisecond); err == nil {
		t.Errorf("%s received %q, want nothing", name, msg)
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
	a1, _ := h.connect("alice")
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
	expectNothing(t, b1, "bob")

	if err := h.srv.SendToSocket(ctx, wb.SocketID, []byte("just bob's socket")); err != nil {
		t.Fatal(err)
	}
	expectText(t, b1, "just bob's socket", "bob")
	expectNothing(t, a1, "alice")

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
	expectNothing(t, a2, "alice")

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
