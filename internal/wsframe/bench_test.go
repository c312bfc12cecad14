package wsframe

import (
	"testing"

	"github.com/gobwas/ws"
)

// TestFeedDoesNotAllocate pins the read path: parsing complete frames from
// the poller's buffer allocates nothing.
func TestFeedDoesNotAllocate(t *testing.T) {
	frame := clientFrame(ws.OpText, true, []byte(`{"type":"something","n":12345}`))
	buf := make([]byte, len(frame))
	var in Inbound
	allocs := testing.AllocsPerRun(1000, func() {
		copy(buf, frame)
		if err := in.Feed(buf, 4096, func(ws.OpCode, []byte) error { return nil }); err != nil {
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
	var in Inbound
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		copy(buf, batch)
		_ = in.Feed(buf, 4096, func(ws.OpCode, []byte) error { return nil })
	}
}
