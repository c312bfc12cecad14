package wsframe

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
	var in Inbound
	var out []got
	for _, c := range chunks {
		c = append([]byte(nil), c...) // feed unmasks in place
		err := in.Feed(c, limit, func(op ws.OpCode, p []byte) error {
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
		wantErr error
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
		{"over the limit", [][]byte{clientFrame(ws.OpText, true, big)}, 299, nil, ErrTooBig},
		{"over the limit only in its header", [][]byte{clientFrame(ws.OpText, true, big)[:8]}, 299, nil, ErrTooBig},
		{"fragments over the limit", [][]byte{
			clientFrame(ws.OpText, false, big[:200]),
			clientFrame(ws.OpContinuation, true, big[:200]),
		}, 299, nil, ErrTooBig},
		{"unmasked", [][]byte{unmasked}, 4096, nil, ErrProtocol},
		{"reserved bit", [][]byte{rsv}, 4096, nil, ErrProtocol},
		{"reserved opcode", [][]byte{clientFrame(ws.OpCode(0x3), true, nil)}, 4096, nil, ErrProtocol},
		{"continuation first", [][]byte{clientFrame(ws.OpContinuation, true, []byte("x"))}, 4096, nil, ErrProtocol},
		{"new message inside a fragmented one", [][]byte{
			clientFrame(ws.OpText, false, []byte("a")),
			clientFrame(ws.OpText, true, []byte("b")),
		}, 4096, nil, ErrProtocol},
		{"fragmented ping", [][]byte{clientFrame(ws.OpPing, false, nil)}, 4096, nil, ErrProtocol},
		{"long ping", [][]byte{clientFrame(ws.OpPing, true, big[:126])}, 4096, nil, ErrProtocol},
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
		wantErr error
	}{
		{"empty", nil, 1000, nil},
		{"normal", ws.NewCloseFrameBody(1000, "bye"), 1000, nil},
		{"going away", ws.NewCloseFrameBody(1001, ""), 1001, nil},
		{"private code", ws.NewCloseFrameBody(4321, "x"), 4321, nil},
		{"service restart echoed", ws.NewCloseFrameBody(1012, "service_restart"), 1012, nil},
		{"try again later echoed", ws.NewCloseFrameBody(1013, ""), 1013, nil},
		{"library range", ws.NewCloseFrameBody(3000, ""), 3000, nil},
		{"unassigned 1016", ws.NewCloseFrameBody(1016, ""), 0, ErrProtocol},
		{"unassigned 2999", ws.NewCloseFrameBody(2999, ""), 0, ErrProtocol},
		{"above 4999", ws.NewCloseFrameBody(5000, ""), 0, ErrProtocol},
		{"reserved 1006", ws.NewCloseFrameBody(1006, ""), 0, ErrProtocol},
		{"one byte", []byte{3}, 0, ErrProtocol},
		{"reserved 1005", ws.NewCloseFrameBody(1005, ""), 0, ErrProtocol},
		{"not in use 999", ws.NewCloseFrameBody(999, ""), 0, ErrProtocol},
		{"bad utf-8 reason", append(ws.NewCloseFrameBody(1000, ""), 0xff, 0xfe), 0, ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, err := ParseClose(tt.payload)
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
		var in Inbound
		step := int(chunk)%16 + 1
		for len(data) > 0 {
			n := min(step, len(data))
			err := in.Feed(data[:n], limit, func(op ws.OpCode, p []byte) error {
				if len(p) > limit {
					t.Fatalf("payload of %d bytes passed a limit of %d", len(p), limit)
				}
				if op.IsControl() && len(p) > 125 {
					t.Fatalf("control payload of %d bytes", len(p))
				}
				return nil
			})
			if err != nil {
				if err != ErrProtocol && err != ErrTooBig {
					t.Fatalf("error %v is not ErrProtocol or ErrTooBig", err)
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

// TestAppendDecodes: the frames AppendFrame and AppendMasked build are read
// back by gobwas/ws as sent, and ParseHeader agrees with it.
func TestAppendDecodes(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		payload := bytes.Repeat([]byte("a"), n)
		tests := []struct {
			name   string
			frame  []byte
			masked bool
		}{
			{"server", AppendFrame(nil, ws.OpText, payload), false},
			{"client", AppendMasked(nil, ws.OpBinary, payload, key), true},
		}
		for _, tt := range tests {
			f, err := ws.ReadFrame(bytes.NewReader(tt.frame))
			if err != nil {
				t.Fatalf("%s len %d: %v", tt.name, n, err)
			}
			if f.Header.Masked != tt.masked || !f.Header.Fin || f.Header.Length != int64(n) {
				t.Fatalf("%s len %d: decoded %+v", tt.name, n, f.Header)
			}
			if tt.masked {
				ws.Cipher(f.Payload, f.Header.Mask, 0)
			}
			if !bytes.Equal(f.Payload, payload) {
				t.Fatalf("%s len %d: payload differs", tt.name, n)
			}
			h, hn, err := ParseHeader(tt.frame)
			if err != nil || h != f.Header || hn+n != len(tt.frame) {
				t.Fatalf("%s len %d: ParseHeader = %+v, %d, %v; want %+v, %d", tt.name, n, h, hn, err, f.Header, len(tt.frame)-n)
			}
			if !tt.masked && hn != HeaderLen(n) {
				t.Fatalf("%s len %d: HeaderLen = %d, header is %d bytes", tt.name, n, HeaderLen(n), hn)
			}
			if _, hn, err := ParseHeader(tt.frame[:hn-1]); hn != 0 || err != nil {
				t.Fatalf("%s len %d: a cut header parsed: n %d err %v", tt.name, n, hn, err)
			}
		}
	}
}
