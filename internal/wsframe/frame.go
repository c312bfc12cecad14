package wscore

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// errStopRead ends parsing after a close frame: nothing after it counts.
var errStopRead = errors.New("wscore: stop reading")

// inbound is the incremental parser of one socket's client frames. It is
// owned by the poller goroutine that reads the socket. An idle socket holds
// no buffer: pending and msg are nil between frames.
type inbound struct {
	pending []byte    // bytes of an incomplete frame
	msg     []byte    // payload of a fragmented message in progress
	msgOp   ws.OpCode // opcode of that message; 0 when none is in progress
}

// frameFunc receives one complete message (text or binary, reassembled) or
// one control frame. payload is only valid during the call.
type frameFunc func(op ws.OpCode, payload []byte) error

// feed parses data, which the caller may reuse after feed returns, calls fn
// for every complete message or control frame, and keeps an incomplete tail
// for the next call. limit bounds a message's payload. It returns a
// *Disconnect for a client that breaks RFC 6455, or whatever fn returned.
func (in *inbound) feed(data []byte, limit int, fn frameFunc) error {
	if len(in.pending) > 0 {
		data = append(in.pending, data...)
		in.pending = nil
	}
	for len(data) > 0 {
		h, hn, err := parseHeader(data)
		if err != nil {
			return err
		}
		if hn == 0 {
			break // header incomplete
		}
		if err := in.check(h, limit); err != nil {
			return err
		}
		end := hn + int(h.Length)
		if len(data) < end {
			break
		}
		payload := data[hn:end]
		ws.Cipher(payload, h.Mask, 0)
		data = data[end:]
		if err := in.dispatch(h, payload, fn); err != nil {
			return err
		}
	}
	if len(data) > 0 {
		in.pending = append([]byte(nil), data...)
	}
	return nil
}

// check applies RFC 6455's rules for a client frame before its payload is
// read, so that an oversized frame is refused without buffering it.
func (in *inbound) check(h ws.Header, limit int) error {
	switch {
	case h.Rsv != 0, !h.Masked, h.OpCode.IsReserved():
		return DisconnectProtocol
	case h.OpCode.IsControl():
		if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
			return DisconnectProtocol
		}
		return nil
	case h.OpCode == ws.OpContinuation && in.msgOp == 0:
		return DisconnectProtocol
	case h.OpCode != ws.OpContinuation && in.msgOp != 0:
		return DisconnectProtocol
	case h.Length > int64(limit-len(in.msg)):
		return DisconnectTooBig
	}
	return nil
}

func (in *inbound) dispatch(h ws.Header, payload []byte, fn frameFunc) error {
	switch {
	case h.OpCode.IsControl():
		return fn(h.OpCode, payload)
	case h.OpCode == ws.OpContinuation:
		in.msg = append(in.msg, payload...)
		if !h.Fin {
			return nil
		}
		op, msg := in.msgOp, in.msg
		in.msgOp, in.msg = 0, nil
		return fn(op, msg)
	case h.Fin:
		return fn(h.OpCode, payload)
	default:
		in.msgOp = h.OpCode
		in.msg = append(make([]byte, 0, len(payload)), payload...)
		return nil
	}
}

// parseHeader decodes a frame header from the start of b. It returns n == 0
// when b does not hold the whole header yet.
func parseHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] >> 4) & 0x7
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		n += 2
		if len(b) < n {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		n += 8
		if len(b) < n {
			return h, 0, nil
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, DisconnectProtocol
		}
		h.Length = int64(u)
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// Frame is one server frame, ready for the wire. It is built once and may
// be sent to any number of sockets: its bytes are never modified. A frame
// built by MessageFrame also carries the time its message was received,
// for the delivery latency reported to Handler.OnWritten; it rides in the
// 8 bytes of spare capacity after the frame (see stamp), so that a queued
// frame costs no more than a slice. Server frames are never masked.
type Frame struct {
	b []byte // len: the frame; cap: the frame, plus stampLen for a stamped one
}

// stampLen is the size of the receipt time stored after a stamped frame.
const stampLen = 8

// TextFrame frames payload as one text message.
func TextFrame(payload []byte) Frame { return newFrame(ws.OpText, payload, 0) }

// BinaryFrame frames payload as one binary message.
func BinaryFrame(payload []byte) Frame { return newFrame(ws.OpBinary, payload, 0) }

// MessageFrame frames payload as one text message received at received, a
// value of Now (which is never 0).
func MessageFrame(payload []byte, received int64) Frame {
	return newFrame(ws.OpText, payload, received)
}

// newFrame allocates the frame once, at its exact size (plus the stamp when
// received is set), so that only a stamped frame has spare capacity.
func newFrame(op ws.OpCode, payload []byte, received int64) Frame {
	n := headerLen(len(payload)) + len(payload)
	extra := 0
	if received != 0 {
		extra = stampLen
	}
	b := appendFrame(make([]byte, 0, n+extra), op, payload)
	if received != 0 {
		binary.LittleEndian.PutUint64(b[n:n+stampLen], uint64(received))
	}
	return Frame{b: b}
}

// stamp returns the receipt time of a MessageFrame, or 0.
func (f Frame) stamp() int64 {
	if cap(f.b)-len(f.b) != stampLen {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(f.b[len(f.b) : len(f.b)+stampLen]))
}

// Len returns the frame's size on the wire.
func (f Frame) Len() int { return len(f.b) }

// Bytes returns the frame's bytes, which must not be modified.
func (f Frame) Bytes() []byte { return f.b }

// FrameOverhead is the most a frame header adds to a payload.
const FrameOverhead = 10

// headerLen is the size of an unmasked frame header for n payload bytes.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// controlFrame frames a control message; payload must be at most 125 bytes.
func controlFrame(op ws.OpCode, payload []byte) Frame { return newFrame(op, payload, 0) }

// closeFrame frames a close message carrying d's code and reason.
func closeFrame(d *Disconnect) Frame {
	return controlFrame(ws.OpClose, ws.NewCloseFrameBody(d.Code, d.Reason))
}

func appendFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	b = append(b, 0x80|byte(op))
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// framePing is the ping every socket shares.
var framePing = controlFrame(ws.OpPing, nil)

// parseClose validates the payload of a client's close frame and returns the
// code to log and echo. A frame without a code is answered with 1000.
func parseClose(payload []byte) (ws.StatusCode, error) {
	switch len(payload) {
	case 0:
		return ws.StatusNormalClosure, nil
	case 1:
		return 0, DisconnectProtocol
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(payload)
	if !validCloseCode(code) {
		return 0, DisconnectProtocol
	}
	if !utf8.ValidString(reason) {
		return 0, DisconnectInvalidUTF8
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code in a close frame:
// the codes IANA registered for RFC 6455 (1004-1006 and 1015 are reserved
// for local use) and the ranges for libraries and applications.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}
