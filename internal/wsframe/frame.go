package wsframe

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The ways a peer breaks RFC 6455, each with the close code that answers it
// (1002, 1009 and 1007).
var (
	ErrProtocol    = errors.New("wsframe: protocol error")
	ErrTooBig      = errors.New("wsframe: message too big")
	ErrInvalidUTF8 = errors.New("wsframe: invalid utf-8")
)

// Inbound is the incremental parser of one socket's client frames. It is
// owned by one goroutine at a time (the socket's reader). An idle socket
// holds no buffer: pending and msg are nil between frames. The zero value
// is ready to use.
type Inbound struct {
	pending []byte    // bytes of an incomplete frame
	msg     []byte    // payload of a fragmented message in progress
	msgOp   ws.OpCode // opcode of that message; 0 when none is in progress
}

// FrameFunc receives one complete message (text or binary, reassembled) or
// one control frame. payload is only valid during the call.
type FrameFunc func(op ws.OpCode, payload []byte) error

// Feed parses data, unmasking it in place (the caller may reuse it after
// Feed returns), calls fn for every complete message or control frame, and
// keeps an incomplete tail for the next call. limit bounds a message's
// payload. It returns ErrProtocol or ErrTooBig for a client that breaks
// RFC 6455, or whatever fn returned.
func (in *Inbound) Feed(data []byte, limit int, fn FrameFunc) error {
	if len(in.pending) > 0 {
		data = append(in.pending, data...)
		in.pending = nil
	}
	for len(data) > 0 {
		h, hn, err := ParseHeader(data)
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
func (in *Inbound) check(h ws.Header, limit int) error {
	switch {
	case h.Rsv != 0, !h.Masked, h.OpCode.IsReserved():
		return ErrProtocol
	case h.OpCode.IsControl():
		if !h.Fin || h.Length > ws.MaxControlFramePayloadSize {
			return ErrProtocol
		}
		return nil
	case h.OpCode == ws.OpContinuation && in.msgOp == 0:
		return ErrProtocol
	case h.OpCode != ws.OpContinuation && in.msgOp != 0:
		return ErrProtocol
	case h.Length > int64(limit-len(in.msg)):
		return ErrTooBig
	}
	return nil
}

func (in *Inbound) dispatch(h ws.Header, payload []byte, fn FrameFunc) error {
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

// ParseHeader decodes a frame header from the start of b. It returns n == 0
// when b does not hold the whole header yet, and ErrProtocol for a 64-bit
// length with its most significant bit set. The fields it could read are
// set even when n == 0.
func ParseHeader(b []byte) (h ws.Header, n int, err error) {
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
			return h, 0, ErrProtocol
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

// MaxHeaderLen is the most a header adds to the payload of an unmasked
// frame (a server's); a client's mask adds 4 bytes more.
const MaxHeaderLen = 10

// HeaderLen is the size of an unmasked frame header for n payload bytes.
func HeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// AppendFrame appends payload to b as one unmasked, final frame of op (the
// frame a server sends).
func AppendFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	b = appendHeader(b, op, 0, len(payload))
	return append(b, payload...)
}

// AppendMasked appends payload to b as one final frame of op masked with
// key (the frame a client sends). payload is not modified.
func AppendMasked(b []byte, op ws.OpCode, payload []byte, key [4]byte) []byte {
	b = appendHeader(b, op, 0x80, len(payload))
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

// appendHeader appends a final frame's header for n payload bytes; mask is
// 0x80 for a masked frame (its key follows), else 0.
func appendHeader(b []byte, op ws.OpCode, mask byte, n int) []byte {
	b = append(b, 0x80|byte(op))
	switch {
	case n <= 125:
		b = append(b, mask|byte(n))
	case n <= 0xffff:
		b = append(b, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b
}

// ParseClose validates the payload of a peer's close frame and returns the
// code to log and echo. A frame without a code is answered with 1000. It
// returns ErrProtocol for a code a peer may not send, ErrInvalidUTF8 for a
// reason that is not UTF-8.
func ParseClose(payload []byte) (ws.StatusCode, error) {
	switch len(payload) {
	case 0:
		return ws.StatusNormalClosure, nil
	case 1:
		return 0, ErrProtocol
	}
	code, reason := ws.ParseCloseFrameDataUnsafe(payload)
	if !ValidCloseCode(code) {
		return 0, ErrProtocol
	}
	if !utf8.ValidString(reason) {
		return 0, ErrInvalidUTF8
	}
	return code, nil
}

// ValidCloseCode reports whether a peer may send code in a close frame:
// the codes IANA registered for RFC 6455 (1004-1006 and 1015 are reserved
// for local use) and the ranges for libraries and applications.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}
