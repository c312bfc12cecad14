package gateway_test

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/gateway"
)

// startingBroker is a broker that is not Ready, and confirms no
// subscription, until Release: a replica whose Redis connection is still
// being made (just started, or resubscribing after a reconnect) while the
// jti store answers.
type startingBroker struct {
	*holdBroker
	ready      atomic.Bool
	subscribed chan struct{} // closed at the first Subscribe
	subOnce    sync.Once
}

func newStartingBroker() *startingBroker {
	return &startingBroker{holdBroker: newHoldBroker(""), subscribed: make(chan struct{})}
}

func (b *startingBroker) Ready() bool { return b.ready.Load() }

func (b *startingBroker) Subscribe(user string) <-chan struct{} {
	defer b.subOnce.Do(func() { close(b.subscribed) })
	return b.holdBroker.Subscribe(user)
}

func (b *startingBroker) Release() {
	b.ready.Store(true)
	b.holdBroker.Release()
}

// TestHandshakeWaitsForStartingBroker: with an inbox, a handshake that
// reaches a replica whose broker is not ready yet, while Redis answers,
// waits for its subscription and is welcomed, as it is without an inbox;
// it is not refused with 1013 (in a rolling restart, balancers send
// clients to a replica that has only just started).
func TestHandshakeWaitsForStartingBroker(t *testing.T) {
	b := newStartingBroker()
	defer b.Release()
	in := must(inbox.NewMemory(b, inbox.MemoryConfig{}))
	defer in.Close()
	h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.Inbox = in }})

	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := h.dial(h.token("early"))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		msg, err := c.ReadText(10 * time.Second)
		done <- result{msg, err}
	}()
	select {
	case <-b.subscribed:
	case r := <-done:
		t.Fatalf("the handshake ended before its subscription was asked for: %q, %v", r.msg, r.err)
	}
	b.Release()
	r := <-done
	if r.err != nil {
		t.Fatalf("after the broker became ready: %v, want the welcome", r.err)
	}
	var w struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(r.msg), &w); err != nil || w.Type != "welcome" {
		t.Fatalf("first frame %q, want the welcome", r.msg)
	}
}
