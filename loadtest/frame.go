package loadtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strconv"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

var errProtocol = errors.New("server broke RFC 6455")

// maxServerFrame is the largest server frame the client accepts.
const maxServerFrame = 1 << 30

// nextFrame parses one server frame at the start of b. It returns the
// frame's header, its payload (aliasing b) and its total length, or n = 0
// when b does not hold a whole frame yet.
func nextFrame(b []byte) (h ws.Header, payload []byte, n int, err error) {
	h, hn, err := wsframe.ParseHeader(b)
	switch {
	case h.Masked:
		return h, nil, 0, errProtocol // servers never mask
	case err != nil, h.Length > maxServerFrame:
		return h, nil, 0, errProtocol
	case hn == 0 || int64(len(b)-hn) < h.Length:
		return h, nil, 0, nil
	}
	end := hn + int(h.Length)
	return h, b[hn:end], end, nil
}

// appendClientFrame appends one masked frame with a fresh mask to dst.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte, rng *rand.Rand) []byte {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rng.Uint32())
	return wsframe.AppendMasked(dst, op, payload, key)
}

// parseClose returns a close frame's code (1005 when it carries none).
func parseClose(p []byte) (int, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}

// Messages the load tester publishes. Each is compact JSON, recognised by
// its prefix without a JSON parse:
//
//	{"type":"lt","s":<seq>,"t":<unix ns>,"p":"<padding>"}         to user:<id>
//	{"type":"lt-bc","id":<n>,"t":<unix ns>}                       to broadcast
//	{"type":"lt-rp","r":<storm>,"k":<1…K>,"t":<unix ns>,"p":"…"}  appended to inbox:<id>
//
// The last reaches a socket as an inbox frame, with the event's id first:
// {"inbox_id":"<id>","type":"lt-rp",…}.
var (
	prefixFanout    = []byte(`{"type":"lt","s":`)
	prefixBroadcast = []byte(`{"type":"lt-bc","id":`)
	prefixReplayEv  = []byte(`{"type":"lt-rp","r":`)
	prefixInbox     = []byte(`{"inbox_id":"`)
	prefixComplete  = []byte(`{"type":"replay_complete"`)
	keyT            = []byte(`"t":`)
	keyK            = []byte(`"k":`)
	keyCount        = []byte(`"count":`)
	keyInboxID      = []byte(`"inbox_id":"`)
	keyAfter        = []byte(`"after_ms":`)
	typeReconnect   = []byte(`"type":"reconnect"`)
	typeResync      = []byte(`"type":"resync"`)
	typeReplayEv    = []byte(`,"type":"lt-rp","r":`) // after an inbox frame's id
)

// appendFanout appends a fan-out payload padded to at least size bytes.
func appendFanout(dst []byte, seq uint64, unixNano int64, size int) []byte {
	start := len(dst)
	dst = append(dst, prefixFanout...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, unixNano, 10)
	if pad := size - (len(dst) - start) - len(`,"p":""}`); pad > 0 {
		dst = append(dst, `,"p":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendReplayEvent appends an inbox event of storm for its k-th of K,
// padded to at least size bytes like a fan-out payload.
func appendReplayEvent(dst []byte, storm uint64, k int, unixNano int64, size int) []byte {
	start := len(dst)
	dst = append(dst, prefixReplayEv...)
	dst = strconv.AppendUint(dst, storm, 10)
	dst = append(dst, `,"k":`...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, unixNano, 10)
	if pad := size - (len(dst) - start) - len(`,"p":""}`); pad > 0 {
		dst = append(dst, `,"p":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// inboxFrame splits an inbox frame {"inbox_id":"<id>",…} into its id and
// the rest after the id's closing quote; ok is false for any other frame.
func inboxFrame(m []byte) (id, rest []byte, ok bool) {
	if !bytes.HasPrefix(m, prefixInbox) {
		return nil, nil, false
	}
	m = m[len(prefixInbox):]
	end := bytes.IndexByte(m, '"')
	if end <= 0 {
		return nil, nil, false
	}
	return m[:end], m[end+1:], true
}

// fieldInboxID returns the "inbox_id" string anywhere in p (a welcome,
// replay_complete or resync frame), or nil.
func fieldInboxID(p []byte) []byte {
	i := bytes.Index(p, keyInboxID)
	if i < 0 {
		return nil
	}
	p = p[i+len(keyInboxID):]
	end := bytes.IndexByte(p, '"')
	if end <= 0 {
		return nil
	}
	return p[:end]
}

// appendBroadcast appends a broadcast payload.
func appendBroadcast(dst []byte, id uint64, unixNano int64) []byte {
	dst = append(dst, prefixBroadcast...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, unixNano, 10)
	return append(dst, '}')
}

// leadingUint parses the decimal digits at the start of b.
func leadingUint(b []byte) (uint64, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	return v, i > 0
}

// fieldUint returns the unsigned number after key in p.
func fieldUint(p, key []byte) (uint64, bool) {
	i := bytes.Index(p, key)
	if i < 0 {
		return 0, false
	}
	return leadingUint(p[i+len(key):])
}
