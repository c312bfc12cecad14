package wscore

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

func TestServerFramesDecode(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte("a"), n)
		f, err := ws.ReadFrame(bytes.NewReader(TextFrame(payload).Bytes()))
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if f.Header.OpCode != ws.OpText || !f.Header.Fin || f.Header.Masked || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("len %d: decoded %+v", n, f.Header)
		}
	}
}

// TestFrameStamp: only MessageFrame carries a receipt time, and it never
// changes the bytes on the wire.
func TestFrameStamp(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 200, 65535, 65536} {
		payload := bytes.Repeat([]byte("p"), n)
		plain, stamped := TextFrame(payload), MessageFrame(payload, 12345)
		if plain.stamp() != 0 || stamped.stamp() != 12345 {
			t.Fatalf("len %d: stamps %d and %d, want 0 and 12345", n, plain.stamp(), stamped.stamp())
		}
		if !bytes.Equal(plain.Bytes(), stamped.Bytes()) {
			t.Fatalf("len %d: the stamp changed the frame", n)
		}
		if cap(plain.Bytes()) != len(plain.Bytes()) {
			t.Fatalf("len %d: an unstamped frame has spare capacity", n)
		}
	}
	if s := closeFrame(DisconnectNormal).stamp(); s != 0 {
		t.Fatalf("close frame stamp %d, want 0", s)
	}
}
