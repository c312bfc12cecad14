package gateway

import (
	"testing"

	"github.com/herald-gw/herald/gateway/wscore"
)

// BenchmarkInboxHold is what the catch-up hook adds to fan-out per target
// socket: with no catch-up in progress (the common case), and with other
// sockets catching up (a reconnect storm), for a socket that is not.
func BenchmarkInboxHold(b *testing.B) {
	payload := []byte(`{"inbox_id":"1764150000000-0","type":"friend_request","data":{"from":{"id":"7","name":"alice"}}}`)
	frame := wscore.TextFrame(payload)
	c := &Conn{id: "n.1"}
	b.Run("idle", func(b *testing.B) {
		in, _ := newInboxState(nil)
		b.ReportAllocs()
		for b.Loop() {
			if in.hold(c, payload, frame) {
				b.Fatal("held")
			}
		}
	})
	b.Run("others_replaying", func(b *testing.B) {
		in, _ := newInboxState(nil)
		for range 1000 {
			in.gates.Store(&Conn{id: "n.other"}, &inboxGate{limit: 1 << 20, synced: make(chan struct{})})
		}
		in.active.Store(1000)
		b.ReportAllocs()
		for b.Loop() {
			if in.hold(c, payload, frame) {
				b.Fatal("held")
			}
		}
	})
}

// TestInboxHoldKeepsSyncMessages: a sync message never reaches a socket,
// gated or not, and it releases only its own socket's gate.
func TestInboxHoldKeepsSyncMessages(t *testing.T) {
	in, _ := newInboxState(nil)
	plain := &Conn{id: "n.plain"}
	if !in.hold(plain, syncMessage("n.x"), wscore.Frame{}) {
		t.Fatal("a sync message went to a socket without a gate")
	}
	gated, other := &Conn{id: "n.gated"}, &Conn{id: "n.other"}
	g := &inboxGate{limit: 1 << 20, synced: make(chan struct{})}
	in.gates.Store(gated, g)
	in.active.Add(1)
	if !in.hold(gated, syncMessage(other.id), wscore.Frame{}) {
		t.Fatal("another socket's sync message went through")
	}
	select {
	case <-g.synced:
		t.Fatal("another socket's sync message released the gate")
	default:
	}
	if !in.hold(gated, syncMessage(gated.id), wscore.Frame{}) {
		t.Fatal("the socket's sync message went through")
	}
	select {
	case <-g.synced:
	default:
		t.Fatal("the socket's sync message did not release the gate")
	}
	in.hold(gated, syncMessage(gated.id), wscore.Frame{}) // a second one does not panic
	if !in.hold(gated, []byte(`{"inbox_id":"1-0"}`), wscore.TextFrame([]byte("f"))) || len(g.held) != 1 {
		t.Fatal("a user frame was not held")
	}
}
