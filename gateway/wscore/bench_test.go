package wscore

import (
	"testing"

	"github.com/gobwas/ws"
)

// TestFeedDoesNotAllocate pins the read path: parsing complete frames from
// the poller's buffer allocates nothing.
func TestFeedDoesNotAllocate(t *testing.T) {
	frame := clientFrame(ws.OpText, true, []byte(`{"type":"something","n":12345}`))
	buf := make([]byte, len(frame))
	var in inbound
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf, frame)
		if err := in.feed(buf, 4096, func(ws.OpCode, []byte) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("feed allocates %.1f times per frame, want 0", allocs)
	}
}

func BenchmarkFeed(b *testing.B) {
	frame := clientFrame(ws.OpText, true, []byte(`{"type":"ping"}`))
	batch := make([]byte, 0, 64*len(frame))
	for range 64 {
		batch = append(batch, frame...)
	}
	buf := make([]byte, len(batch))
	var in inbound
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		copy(buf, batch)
		_ = in.feed(buf, 4096, func(ws.OpCode, []byte) error { return nil })
	}
}

func BenchmarkTextFrame(b *testing.B) {
	payload := []byte(`{"type":"friend_request","id":"5f0c2b1e-0d7e-4c1a-9d55-7f1a2b3c4d5e","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = TextFrame(payload)
	}
}
