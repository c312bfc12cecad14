package wscore

import (
	"encoding/binary"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

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
	n := wsframe.HeaderLen(len(payload)) + len(payload)
	extra := 0
	if received != 0 {
		extra = stampLen
	}
	b := wsframe.AppendFrame(make([]byte, 0, n+extra), op, payload)
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
const FrameOverhead = wsframe.MaxHeaderLen

// controlFrame frames a control message; payload must be at most 125 bytes.
func controlFrame(op ws.OpCode, payload []byte) Frame { return newFrame(op, payload, 0) }

// closeFrame frames a close message carrying d's code and reason.
func closeFrame(d *Disconnect) Frame {
	return controlFrame(ws.OpClose, ws.NewCloseFrameBody(d.Code, d.Reason))
}

// framePing is the ping every socket shares.
var framePing = controlFrame(ws.OpPing, nil)
