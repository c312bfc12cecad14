package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// socketBroker is a memory broker that also subscribes sockets one by one
// (fanout.SocketSubscriber), as the Redis Cluster broker does, and confirms
// those subscriptions only once release is closed.
type socketBroker struct {
	fanout.Broker
	release chan struct{}

	mu           sync.Mutex
	subscribed   []string
	unsubscribed []string
}

func (b *socketBroker) SubscribeSocket(id string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subscribed = append(b.subscribed, id)
	return b.release
}

func (b *socketBroker) UnsubscribeSocket(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unsubscribed = append(b.unsubscribed, id)
}

func (b *socketBroker) calls() (sub, unsub []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.subscribed), slices.Clone(b.unsubscribed)
}

// With a broker that subscribes sockets one by one, the welcome waits for
// the socket's subscription as well as the user's, under the same
// handshake timeout (1013), and the socket's channel is dropped when the
// socket goes.
func TestHandshakeWaitsForSocketSubscription(t *testing.T) {
	testenv.NoLeaks(t)
	b := &socketBroker{Broker: fanout.NewMemory(fanout.MemoryConfig{}), release: make(chan struct{})}
	h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.HandshakeTimeout = 700 * time.Millisecond }})

	// The user's subscription is confirmed at once, the socket's never:
	// refused with 1013 and no welcome before it.
	c, err := h.dial(h.token("u1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ReadText(5 * time.Second)
	var cf *testenv.CloseFrame
	if !errors.As(err, &cf) || cf.Code != 1013 {
		t.Fatalf("first frame: %v, want close 1013 (no welcome)", err)
	}
	c.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		sub, unsub := b.calls()
		if len(sub) != 1 || !slices.Equal(unsub, sub) {
			return fmt.Errorf("SubscribeSocket %v, UnsubscribeSocket %v; want the refused socket in both", sub, unsub)
		}
		return nil
	})

	// Confirmed: welcomed, under the id it subscribed; its messages flow.
	close(b.release)
	c2, w := h.connect("u1")
	sub, _ := b.calls()
	if len(sub) != 2 || sub[1] != w.SocketID {
		t.Fatalf("SubscribeSocket calls %v, want the welcomed socket %s last", sub, w.SocketID)
	}
	if err := b.Publish(context.Background(), publish.Socket(w.SocketID), []byte(`{"type":"one"}`)); err != nil {
		t.Fatal(err)
	}
	expectText(t, c2, `{"type":"one"}`, "socket message")
	c2.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if _, unsub := b.calls(); len(unsub) != 2 || unsub[1] != w.SocketID {
			return fmt.Errorf("UnsubscribeSocket calls %v, want %s last", unsub, w.SocketID)
		}
		return nil
	})
}
