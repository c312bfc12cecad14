package gateway

import (
	"testing"

	"github.com/herald-gw/herald/fanout"
)

// pendingBroker's Subscribe returns a channel the test closes.
type pendingBroker struct {
	fanout.Broker
	ready chan struct{}
}

func (b *pendingBroker) Subscribe(string) <-chan struct{} { return b.ready }
func (b *pendingBroker) Unsubscribe(string)               {}

// TestRegistrySettled: the registry keeps a user's subscription channel
// only until a handshake saw it closed; later sockets of the user then get
// a closed channel, and a channel still open is kept.
func TestRegistrySettled(t *testing.T) {
	b := &pendingBroker{ready: make(chan struct{})}
	r := newRegistry(b, 4)
	c1, c2 := &Conn{id: "n.1", user: "u"}, &Conn{id: "n.2", user: "u"}
	if _, _, err := r.add(c1); err != nil {
		t.Fatal(err)
	}
	r.settled("u")
	if got := r.users[r.shard("u")].m["u"].ready; got == nil {
		t.Fatal("settled dropped a channel that is still open")
	}
	close(b.ready)
	r.settled("u")
	if got := r.users[r.shard("u")].m["u"].ready; got != nil {
		t.Fatal("settled kept a closed channel")
	}
	ready, _, err := r.add(c2)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	default:
		t.Fatal("a later socket of a settled user got an open channel")
	}
	r.remove(c1)
	r.remove(c2)
	r.settled("u") // a user gone: nothing to do
}
