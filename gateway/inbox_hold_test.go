package gateway

import (
	"testing"

	"github.com/herald-gw/herald/fanout/inbox"
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
		b.ReportAllocs()
		for b.Loop() {
			if c.hold(payload, frame) {
				b.Fatal("held")
			}
		}
	})
	b.Run("others_replaying", func(b *testing.B) {
		others := make([]*Conn, 1000)
		for i := range others {
			others[i] = &Conn{id: "n.other"}
			others[i].gate.Store(newInboxGate(1 << 20))
		}
		b.ReportAllocs()
		for b.Loop() {
			if c.hold(payload, frame) {
				b.Fatal("held")
			}
		}
	})
}

// TestInboxHoldKeepsSyncMessages: a sync message never reaches a socket,
// gated or not, and it releases only its own socket's gate.
func TestInboxHoldKeepsSyncMessages(t *testing.T) {
	plain := &Conn{id: "n.plain"}
	if !plain.hold(syncMessage("n.x"), wscore.Frame{}) {
		t.Fatal("a sync message went to a socket without a gate")
	}
	gated, other := &Conn{id: "n.gated"}, &Conn{id: "n.other"}
	g := newInboxGate(1 << 20)
	gated.gate.Store(g)
	if !gated.hold(syncMessage(other.id), wscore.Frame{}) {
		t.Fatal("another socket's sync message went through")
	}
	select {
	case <-g.synced:
		t.Fatal("another socket's sync message released the gate")
	default:
	}
	if !gated.hold(syncMessage(gated.id), wscore.Frame{}) {
		t.Fatal("the socket's sync message went through")
	}
	select {
	case <-g.synced:
	default:
		t.Fatal("the socket's sync message did not release the gate")
	}
	gated.hold(syncMessage(gated.id), wscore.Frame{}) // a second one does not panic
	if !gated.hold([]byte(`{"inbox_id":"1-0"}`), wscore.TextFrame([]byte("f"))) || len(g.held) != 1 {
		t.Fatal("a user frame was not held")
	}
	if g.end(gated, false, inbox.StreamID{}) || gated.gate.Load() != nil {
		t.Fatal("end: overflow reported, or the gate is still set")
	}
	if gated.hold([]byte(`{"inbox_id":"2-0"}`), wscore.TextFrame([]byte("f"))) {
		t.Fatal("a frame was held after the gate ended")
	}
}
