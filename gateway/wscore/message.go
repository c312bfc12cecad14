package wscore

import (
	"encoding/binary"
	"sync"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

// Message is one relayed message framed into a buffer its sender reuses,
// for SendMessage to any number of sockets. A socket that takes it at once
// (write-through) is written from that buffer; the first socket that must
// queue it makes one copy, a Frame that every later socket queues too and
// that lives until the last of them has written it. While sockets keep
// up, a message costs no allocation, and its payload is copied once, into
// the buffer.
//
// Reset and the buffer belong to the sender; SendMessage may be called
// from several goroutines at once for the same Message, between one Reset
// and the next.
type Message struct {
	buf []byte // the frame; owned by the sender, read-only between Resets
	at  int64  // receipt time, a value of Now

	mu     sync.Mutex
	shared Frame // the queued copy, made on first need; guarded by mu
}

// Reset frames payload as one text message received at received (a value
// of Now), reusing the buffer.
func (m *Message) Reset(payload []byte, received int64) {
	m.buf = wsframe.AppendFrame(m.buf[:0], ws.OpText, payload)
	m.at = received
	m.mu.Lock()
	m.shared = Frame{}
	m.mu.Unlock()
}

// Len returns the frame's size on the wire.
func (m *Message) Len() int { return len(m.buf) }

// Frame returns the message as a Frame that may be queued and kept: a copy
// (carrying the receipt time, as MessageFrame's) made by the first call
// after Reset and shared by the later ones.
func (m *Message) Frame() Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shared.b == nil {
		b := make([]byte, len(m.buf), len(m.buf)+stampLen)
		copy(b, m.buf)
		binary.LittleEndian.PutUint64(b[len(b):len(b)+stampLen], uint64(m.at))
		m.shared = Frame{b: b}
	}
	return m.shared
}
