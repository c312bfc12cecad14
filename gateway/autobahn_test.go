package gateway_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/testenv"
)

// The frame-handling suite, organised like the Autobahn testsuite's
// sections 1-7 and 9 (the suite itself needs Python and cannot run here).
// Each case sends raw frames on a fresh socket and expects either a close
// frame with a given code or a socket that stays open: then it must answer
// {"type":"ping"} with {"type":"pong"}, after the WebSocket pongs the case
// expects. docs/RELIABILITY.md lists the sections and their close codes.

// rawFrame is one frame as a client may send it, valid or not.
type rawFrame struct {
	fin      bool
	rsv      byte // RSV1..3 as bits 2..0
	op       ws.OpCode
	payload  []byte
	unmasked bool
	length   int64 // when non-zero, the header's length, with no payload sent
}

func text(s string) rawFrame { return rawFrame{fin: true, op: ws.OpText, payload: []byte(s)} }
func bin(b []byte) rawFrame  { return rawFrame{fin: true, op: ws.OpBinary, payload: b} }
func ping(b []byte) rawFrame { return rawFrame{fin: true, op: ws.OpPing, payload: b} }
func pong(b []byte) rawFrame { return rawFrame{fin: true, op: ws.OpPong, payload: b} }
func frag(op ws.OpCode, fin bool, b []byte) rawFrame {
	return rawFrame{fin: fin, op: op, payload: b}
}
func closeFrame(code int, reason string) rawFrame {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return rawFrame{fin: true, op: ws.OpClose, payload: append(p, reason...)}
}

// frameCase is one row of a section's table.
type frameCase struct {
	name      string
	frames    []rawFrame
	wantClose int      // 0: the socket stays open
	wantPongs [][]byte // WebSocket pong payloads expected first, in order
}

func writeRaw(c *testenv.WSClient, frames []rawFrame) error {
	var buf bytes.Buffer
	for _, f := range frames {
		h := ws.Header{Fin: f.fin, Rsv: f.rsv, OpCode: f.op, Length: int64(len(f.payload)), Masked: !f.unmasked}
		if f.length != 0 {
			h.Length = f.length
		}
		p := append([]byte(nil), f.payload...)
		if h.Masked {
			h.Mask = ws.NewMask()
			ws.Cipher(p, h.Mask, 0)
		}
		if err := ws.WriteHeader(&buf, h); err != nil {
			return err
		}
		if f.length == 0 {
			buf.Write(p)
		}
	}
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Conn.Write(buf.Bytes())
	return err
}

// runFrameCases runs every case of one section on its own socket.
func runFrameCases(t *testing.T, cases []frameCase) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := h.connect("42")
			if err := writeRaw(c, tc.frames); err != nil {
				t.Fatalf("write: %v", err)
			}
			if tc.wantClose != 0 {
				cf, err := c.ExpectClose(5 * time.Second)
				if err != nil {
					t.Fatalf("want close %d: %v", tc.wantClose, err)
				}
				if cf.Code != tc.wantClose {
					t.Fatalf("close = %d %q, want %d", cf.Code, cf.Reason, tc.wantClose)
				}
				return
			}
			if err := c.WriteText(`{"type":"ping"}`); err != nil {
				t.Fatal(err)
			}
			var pongs [][]byte
			deadline := time.Now().Add(5 * time.Second)
			for {
				f, err := c.ReadFrame(time.Until(deadline))
				if err != nil {
					t.Fatalf("socket did not stay open: %v (pongs so far %d)", err, len(pongs))
				}
				if f.Op == ws.OpClose {
					code, reason := ws.ParseCloseFrameData(f.Payload)
					t.Fatalf("closed with %d %q, want the socket open", code, reason)
				}
				if f.Op == ws.OpPong {
					pongs = append(pongs, f.Payload)
				}
				if f.Op == ws.OpText && string(f.Payload) == `{"type":"pong"}` {
					break
				}
			}
			if len(pongs) != len(tc.wantPongs) {
				t.Fatalf("got %d pongs, want %d", len(pongs), len(tc.wantPongs))
			}
			for i := range pongs {
				if !bytes.Equal(pongs[i], tc.wantPongs[i]) {
					t.Errorf("pong %d payload %q, want %q", i+1, pongs[i], tc.wantPongs[i])
				}
			}
		})
	}
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// Section 1: framing of text and binary messages.
func TestFramesSection1Framing(t *testing.T) {
	var cases []frameCase
	for _, n := range []int{0, 125, 126, 127, 4096} {
		cases = append(cases,
			frameCase{name: fmt.Sprintf("1.1 text %d bytes", n), frames: []rawFrame{text(strings.Repeat("*", n))}},
			frameCase{name: fmt.Sprintf("1.2 binary %d bytes", n), frames: []rawFrame{bin(bytes.Repeat([]byte{0xfe}, n))}},
		)
	}
	cases = append(cases,
		frameCase{name: "1.3 unmasked text", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte("x"), unmasked: true}}, wantClose: 1002},
		frameCase{name: "1.4 a ping message among others", frames: []rawFrame{text("a"), text(`{"type":"ping"}`), bin([]byte{1})}},
	)
	runFrameCases(t, cases)
}

// Section 2: pings and pongs.
func TestFramesSection2PingPong(t *testing.T) {
	tenPings := make([]rawFrame, 10)
	tenPongs := make([][]byte, 10)
	for i := range tenPings {
		p := []byte(fmt.Sprintf("ping %d", i))
		tenPings[i], tenPongs[i] = ping(p), p
	}
	runFrameCases(t, []frameCase{
		{name: "2.1 ping without payload", frames: []rawFrame{ping(nil)}, wantPongs: [][]byte{{}}},
		{name: "2.2 ping with text payload", frames: []rawFrame{ping([]byte("hello"))}, wantPongs: [][]byte{[]byte("hello")}},
		{name: "2.3 ping with binary payload", frames: []rawFrame{ping(seq(125))}, wantPongs: [][]byte{seq(125)}},
		{name: "2.4 ping with 126 bytes", frames: []rawFrame{ping(seq(126))}, wantClose: 1002},
		{name: "2.5 unsolicited pong", frames: []rawFrame{pong([]byte("x"))}},
		{name: "2.6 unsolicited pong then ping", frames: []rawFrame{pong([]byte("x")), ping([]byte("y"))}, wantPongs: [][]byte{[]byte("y")}},
		{name: "2.7 ten pings", frames: tenPings, wantPongs: tenPongs},
		{name: "2.8 fragmented ping", frames: []rawFrame{frag(ws.OpPing, false, []byte("a")), frag(ws.OpContinuation, true, []byte("b"))}, wantClose: 1002},
	})
}

// Section 3: reserved bits (no extension is negotiated).
func TestFramesSection3ReservedBits(t *testing.T) {
	var cases []frameCase
	for _, rsv := range []byte{4, 2, 1, 7} {
		for _, f := range []rawFrame{text("x"), bin([]byte{1}), ping([]byte("p")), closeFrame(1000, "")} {
			f.rsv = rsv
			cases = append(cases, frameCase{name: fmt.Sprintf("3 rsv=%03b on %v", rsv, f.op), frames: []rawFrame{f}, wantClose: 1002})
		}
	}
	cases = append(cases, frameCase{name: "3 rsv after a valid message", frames: []rawFrame{text("ok"), {fin: true, rsv: 4, op: ws.OpText, payload: []byte("x")}}, wantClose: 1002})
	runFrameCases(t, cases)
}

// Section 4: reserved opcodes.
func TestFramesSection4Opcodes(t *testing.T) {
	var cases []frameCase
	for _, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases,
			frameCase{name: fmt.Sprintf("4 opcode %#x", byte(op)), frames: []rawFrame{{fin: true, op: op}}, wantClose: 1002},
			frameCase{name: fmt.Sprintf("4 opcode %#x with payload after a message", byte(op)), frames: []rawFrame{text("ok"), {fin: true, op: op, payload: []byte("x")}}, wantClose: 1002},
		)
	}
	runFrameCases(t, cases)
}

// Section 5: fragmentation.
func TestFramesSection5Fragmentation(t *testing.T) {
	ones := []rawFrame{frag(ws.OpText, false, []byte("{"))}
	for _, b := range []byte(`"type":"ping"`) {
		ones = append(ones, frag(ws.OpContinuation, false, []byte{b}))
	}
	ones = append(ones, frag(ws.OpContinuation, true, []byte("}")))
	runFrameCases(t, []frameCase{
		{name: "5.1 fragmented ping control frame", frames: []rawFrame{frag(ws.OpPing, false, nil)}, wantClose: 1002},
		{name: "5.2 continuation without a start", frames: []rawFrame{frag(ws.OpContinuation, true, []byte("x"))}, wantClose: 1002},
		{name: "5.3 text in two fragments", frames: []rawFrame{frag(ws.OpText, false, []byte(`{"type":`)), frag(ws.OpContinuation, true, []byte(`"ping"}`))}},
		{name: "5.4 text in one-byte fragments", frames: ones},
		{name: "5.5 ping between fragments", frames: []rawFrame{frag(ws.OpText, false, []byte("ab")), ping([]byte("mid")), frag(ws.OpContinuation, true, []byte("cd"))}, wantPongs: [][]byte{[]byte("mid")}},
		{name: "5.6 new text while a message is open", frames: []rawFrame{frag(ws.OpText, false, []byte("a")), text("b")}, wantClose: 1002},
		{name: "5.7 new binary while a message is open", frames: []rawFrame{frag(ws.OpText, false, []byte("a")), frag(ws.OpBinary, true, []byte("b"))}, wantClose: 1002},
		{name: "5.8 continuation after a complete message", frames: []rawFrame{text("a"), frag(ws.OpContinuation, true, []byte("b"))}, wantClose: 1002},
		{name: "5.9 empty fragments", frames: []rawFrame{frag(ws.OpText, false, nil), frag(ws.OpContinuation, false, nil), frag(ws.OpContinuation, true, nil)}},
		{name: "5.10 binary in fragments", frames: []rawFrame{frag(ws.OpBinary, false, seq(100)), frag(ws.OpContinuation, true, seq(100))}},
	})
}

// Section 6: UTF-8 in text messages.
func TestFramesSection6UTF8(t *testing.T) {
	kappa := []byte("κόσμε")
	runFrameCases(t, []frameCase{
		{name: "6.1 valid multi-byte text", frames: []rawFrame{text("κόσμε, ☃, 𝄞")}},
		{name: "6.2 valid code point split across fragments", frames: []rawFrame{frag(ws.OpText, false, kappa[:1]), frag(ws.OpContinuation, true, kappa[1:])}},
		{name: "6.3 U+10FFFF", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte{0xf4, 0x8f, 0xbf, 0xbf}}}},
		{name: "6.4 byte 0xff", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte{'a', 0xff}}}, wantClose: 1007},
		{name: "6.5 overlong slash", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte{0xc0, 0xaf}}}, wantClose: 1007},
		{name: "6.6 UTF-16 surrogate", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte{0xed, 0xa0, 0x80}}}, wantClose: 1007},
		{name: "6.7 above U+10FFFF", frames: []rawFrame{{fin: true, op: ws.OpText, payload: []byte{0xf4, 0x90, 0x80, 0x80}}}, wantClose: 1007},
		{name: "6.8 truncated sequence at the end", frames: []rawFrame{{fin: true, op: ws.OpText, payload: kappa[:1]}}, wantClose: 1007},
		{name: "6.9 invalid byte in the second fragment", frames: []rawFrame{frag(ws.OpText, false, []byte("ok")), frag(ws.OpContinuation, true, []byte{0xff})}, wantClose: 1007},
		{name: "6.10 invalid UTF-8 in binary is fine", frames: []rawFrame{bin([]byte{0xff, 0xfe, 0xc0})}},
	})
}

// Section 7: close handling.
func TestFramesSection7Close(t *testing.T) {
	cases := []frameCase{
		{name: "7.1 close without payload: echoed as 1000", frames: []rawFrame{{fin: true, op: ws.OpClose}}, wantClose: 1000},
		{name: "7.2 close with one byte", frames: []rawFrame{{fin: true, op: ws.OpClose, payload: []byte{0x03}}}, wantClose: 1002},
		{name: "7.3 close with a 123-byte reason", frames: []rawFrame{closeFrame(1000, strings.Repeat("r", 123))}, wantClose: 1000},
		{name: "7.4 close with 124-byte reason (126 bytes)", frames: []rawFrame{closeFrame(1000, strings.Repeat("r", 124))}, wantClose: 1002},
		{name: "7.5 close reason invalid UTF-8", frames: []rawFrame{closeFrame(1000, "\xff")}, wantClose: 1007},
		{name: "7.6 data after close is ignored", frames: []rawFrame{closeFrame(1000, ""), text("late")}, wantClose: 1000},
		{name: "7.7 fragmented close", frames: []rawFrame{{fin: false, op: ws.OpClose, payload: []byte{0x03, 0xe8}}}, wantClose: 1002},
	}
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cases = append(cases, frameCase{name: fmt.Sprintf("7.8 valid code %d echoed", code), frames: []rawFrame{closeFrame(code, "")}, wantClose: code})
	}
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		cases = append(cases, frameCase{name: fmt.Sprintf("7.9 invalid code %d", code), frames: []rawFrame{closeFrame(code, "")}, wantClose: 1002})
	}
	runFrameCases(t, cases)
}

// Section 9: limits (herald's --max-message-bytes is 4096 here).
func TestFramesSection9Limits(t *testing.T) {
	many := make([]rawFrame, 1000)
	for i := range many {
		many[i] = text("m")
	}
	runFrameCases(t, []frameCase{
		{name: "9.1 text at the limit", frames: []rawFrame{text(strings.Repeat("a", 4096))}},
		{name: "9.2 text one byte over", frames: []rawFrame{text(strings.Repeat("a", 4097))}, wantClose: 1009},
		{name: "9.3 binary one byte over", frames: []rawFrame{bin(make([]byte, 4097))}, wantClose: 1009},
		{name: "9.4 fragments over the limit together", frames: []rawFrame{frag(ws.OpText, false, make([]byte, 2049)), frag(ws.OpContinuation, true, make([]byte, 2048))}, wantClose: 1009},
		{name: "9.5 header claiming 2^63-1 bytes", frames: []rawFrame{{fin: true, op: ws.OpBinary, length: 1<<63 - 1}}, wantClose: 1009},
		{name: "9.6 header claiming 64 KiB", frames: []rawFrame{{fin: true, op: ws.OpText, length: 64 << 10}}, wantClose: 1009},
		{name: "9.7 1000 small messages in one write", frames: many},
	})
}
