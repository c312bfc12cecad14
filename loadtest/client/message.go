package client

import (
	"bytes"
	"strconv"
)

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
	prefixStormEv   = []byte(`{"type":"lt-rp","r":`)
	prefixInbox     = []byte(`{"inbox_id":"`)
	prefixComplete  = []byte(`{"type":"replay_complete"`)
	keyT            = []byte(`"t":`)
	keyK            = []byte(`"k":`)
	keyCount        = []byte(`"count":`)
	keyInboxID      = []byte(`"inbox_id":"`)
	keyAfter        = []byte(`"after_ms":`)
	typeReconnect   = []byte(`"type":"reconnect"`)
	typeResync      = []byte(`"type":"resync"`)
	typeStormEv     = []byte(`,"type":"lt-rp","r":`) // after an inbox frame's id
)

// AppendFanout appends a fan-out payload padded to at least size bytes.
func AppendFanout(dst []byte, seq uint64, unixNano int64, size int) []byte {
	start := len(dst)
	dst = append(dst, prefixFanout...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, unixNano, 10)
	return appendPadding(dst, start, size)
}

// appendPadding ends the payload that began at dst[start] with a "p"
// field of 'x's, so that it is at least size bytes, and the closing brace.
func appendPadding(dst []byte, start, size int) []byte {
	if pad := size - (len(dst) - start) - len(`,"p":""}`); pad > 0 {
		dst = append(dst, `,"p":"`...)
		for range pad {
			dst = append(dst, 'x')
		}
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// AppendStormEvent appends an inbox event of storm for its k-th of K,
// padded to at least size bytes like a fan-out payload.
func AppendStormEvent(dst []byte, storm uint64, k int, unixNano int64, size int) []byte {
	start := len(dst)
	dst = append(dst, prefixStormEv...)
	dst = strconv.AppendUint(dst, storm, 10)
	dst = append(dst, `,"k":`...)
	dst = strconv.AppendInt(dst, int64(k), 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, unixNano, 10)
	return appendPadding(dst, start, size)
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

// AppendBroadcast appends a broadcast payload.
func AppendBroadcast(dst []byte, id uint64, unixNano int64) []byte {
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
