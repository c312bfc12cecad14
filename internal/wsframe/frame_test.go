package wscore

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

// clientFrame builds a masked client frame as a browser would send it.
func clientFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	var buf bytes.Buffer
	if err := ws.WriteFrame(&buf, f); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

type got struct {
	op      ws.OpCode
	payload string
}

func feedAll(t *testing.T, chunks [][]byte, limit int) ([]got, error) {
	t.Helper()
	var in inbound
	var out []got
	for _, c := range chunks {
		c = append([]byte(nil), c...) // feed unmasks in place
		err := in.feed(c, limit, func(op ws.OpCode, p []byte) error {
			out = append(out, got{op, string(p)})
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	if in.pending != nil || in.msg != nil {
		t.Errorf("parser holds a buffer after complete frames: pending=%d msg=%d", len(in.pending), len(in.msg))
	}
	return out, nil
}

func TestInboundFrames(t *testing.T) {
	text := clientFrame(ws.OpText, true, []byte("hello"))
	big := bytes.Repeat([]byte("x"), 300)
	unmasked := ws.MustCompileFrame(ws.NewTextFrame([]byte("hi")))
	rsv := clientFrame(ws.OpText, true, []byte("hi"))
	rsv[0] |= 0x40

	tests := []struct {
		name    string
		chunks  [][]byte
		limit   int
		want    []got
		wantErr *Disconnect
	}{
		{"one text frame", [][]byte{text}, 4096, []got{{ws.OpText, "hello"}}, nil},
		{"split byte by byte", splitEvery(text, 1), 4096, []got{{ws.OpText, "hello"}}, nil},
		{"two frames in one read", [][]byte{append(append([]byte{}, text...), text...)}, 4096,
			[]got{{ws.OpText, "hello"}, {ws.OpText, "hello"}}, nil},
		{"16-bit length", [][]byte{clientFrame(ws.OpText, true, big)}, 4096, []got{{ws.OpText, string(big)}}, nil},
		{"fragmented with a ping in between", [][]byte{
			clientFrame(ws.OpText, false, []byte("hel")),
			clientFrame(ws.OpPing, true, []byte("p")),
			clientFrame(ws.OpContinuation, true, []byte("lo")),
		}, 4096, []got{{ws.OpPing, "p"}, {ws.OpText, "hello"}}, nil},
		{"at the limit", [][]byte{clientFrame(ws.OpText, true, big)}, 300, []got{{ws.OpText, string(big)}}, nil},
		{"over the limit", [][]byte{clientFrame(ws.OpText, true, big)}, 299, nil, DisconnectTooBig},
		{"over the limit only in its header", [][]byte{clientFrame(ws.OpText, true, big)[:8]}, 299, nil, DisconnectTooBig},
		{"fragments over the limit", [][]byte{
			clientFrame(ws.OpText, false, big[:200]),
			clientFrame(ws.OpContinuation, true, big[:200]),
		}, 299, nil, DisconnectTooBig},
		{"unmasked", [][]byte{unmasked}, 4096, nil, DisconnectProtocol},
		{"reserved bit", [][]byte{rsv}, 4096, nil, DisconnectProtocol},
		{"reserved opcode", [][]byte{clientFrame(ws.OpCode(0x3), true, nil)}, 4096, nil, DisconnectProtocol},
		{"continuation first", [][]byte{clientFrame(ws.OpContinuation, true, []byte("x"))}, 4096, nil, DisconnectProtocol},
		{"new message inside a fragmented one", [][]byte{
			clientFrame(ws.OpText, false, []byte("a")),
			clientFrame(ws.OpText, true, []byte("b")),
		}, 4096, nil, DisconnectProtocol},
		{"fragmented ping", [][]byte{clientFrame(ws.OpPing, false, nil)}, 4096, nil, DisconnectProtocol},
		{"long ping", [][]byte{clientFrame(ws.OpPing, true, big[:126])}, 4096, nil, DisconnectProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := feedAll(t, tt.chunks, tt.limit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want none", err)
			}
			if len(out) != len(tt.want) {
				t.Fatalf("got %d frames %v, want %d %v", len(out), out, len(tt.want), tt.want)
			}
			for i := range out {
				if out[i] != tt.want[i] {
					t.Errorf("frame %d = %v, want %v", i, out[i], tt.want[i])
				}
			}
		})
	}
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func TestParseClose(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    ws.StatusCode
		wantErr *Disconnect
	}{
		{"empty", nil, 1000, nil},
		{"normal", ws.NewCloseFrameBody(1000, "bye"), 1000, nil},
		{"going away", ws.NewCloseFrameBody(1001, ""), 1001, nil},
		{"private code", ws.NewCloseFrameBody(4321, "x"), 4321, nil},
		{"service restart echoed", ws.NewCloseFrameBody(1012, "service_restart"), 1012, nil},
		{"try again later echoed", ws.NewCloseFrameBody(1013, ""), 1013, nil},
		{"library range", ws.NewCloseFrameBody(3000, ""), 3000, nil},
		{"unassigned 1016", ws.NewCloseFrameBody(1016, ""), 0, DisconnectProtocol},
		{"unassigned 2999", ws.NewCloseFrameBody(2999, ""), 0, DisconnectProtocol},
		{"above 4999", ws.NewCloseFrameBody(5000, ""), 0, DisconnectProtocol},
		{"reserved 1006", ws.NewCloseFrameBody(1006, ""), 0, DisconnectProtocol},
		{"one byte", []byte{3}, 0, DisconnectProtocol},
		{"reserved 1005", ws.NewCloseFrameBody(1005, ""), 0, DisconnectProtocol},
		{"not in use 999", ws.NewCloseFrameBody(999, ""), 0, DisconnectProtocol},
		{"bad utf-8 reason", append(ws.NewCloseFrameBody(1000, ""), 0xff, 0xfe), 0, DisconnectInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := parseClose(tt.payload)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || code != tt.want {
				t.Fatalf("parseClose = %d, %v; want %d", code, err, tt.want)
			}
		})
	}
}

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

// FuzzInbound feeds arbitrary bytes, in arbitrary chunks, to the frame
// parser. It must never panic, never hand over more than the limit, and
// must parse a valid masked frame the same way gobwas/ws does.
func FuzzInbound(f *testing.F) {
	f.Add(clientFrame(ws.OpText, true, []byte("hello")), uint8(3))
	f.Add(clientFrame(ws.OpText, false, []byte("he")), uint8(1))
	f.Add(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "x")), uint8(7))
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}, uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const limit = 512
		var in inbound
		step := int(chunk)%16 + 1
		for len(data) > 0 {
			n := min(step, len(data))
			err := in.feed(data[:n], limit, func(op ws.OpCode, p []byte) error {
				if len(p) > limit {
					t.Fatalf("payload of %d bytes passed a limit of %d", len(p), limit)
				}
				if op.IsControl() && len(p) > 125 {
					t.Fatalf("control payload of %d bytes", len(p))
				}
				return nil
			})
			if err != nil {
				var d *Disconnect
				if !errors.As(err, &d) {
					t.Fatalf("error %v is not a *Disconnect", err)
				}
				return
			}
			if len(in.pending) > limit+14 {
				t.Fatalf("pending grew to %d bytes", len(in.pending))
			}
			data = data[n:]
		}
	})
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
