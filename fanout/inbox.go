package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The inbox keeps each user's recent events, so that a socket that comes back
// can be given what it missed. Each event appended to a user's inbox gets an
// id ("<unix ms>-<seq>", a Redis Stream id; ids only grow), and it is
// published to the user's channel in the same atomic step, as a frame that
// carries the id:
//
//	payload  {"type":"friend_request",…}
//	frame    {"inbox_id":"1764150000000-0","type":"friend_request",…}
//
// A reconnecting socket names the last id it saw (since); Read returns what
// the inbox holds after it, or reports a gap that cannot be closed.

// ErrNotObject refuses an inbox payload that is not a JSON object: the id is
// spliced in as its first member, so the payload must start with '{'.
var ErrNotObject = errors.New("fanout: an inbox payload must be a JSON object starting with '{'")

// ErrInboxIDInPayload refuses an inbox payload with a top-level "inbox_id"
// member of its own: herald splices the event's id in as "inbox_id", and a
// frame with two would let the payload's (JSON.parse keeps the last) become
// the client's replay position.
var ErrInboxIDInPayload = errors.New(`fanout: an inbox payload must not have a top-level "inbox_id": herald adds the event's own`)

// InboxConfig bounds every user's inbox. Every zero value means the default
// named in the field's comment. Publishers and herald should use the same
// values: herald replays at most MaxLen events per reconnect.
type InboxConfig struct {
	// MaxLen caps the events replayed per reconnect: a reconnect that
	// missed more than MaxLen events is told to resync, one that missed
	// exactly MaxLen gets them all. MaxLen+1 entries are kept per user
	// (XADD MAXLEN ~, so Redis may keep a few more until it can drop a
	// whole node): the extra one is the entry before the newest MaxLen, a
	// since that still finds its place. Zero means 100.
	MaxLen int
	// Retention drops events older than this (XTRIM MINID on every append)
	// and a whole inbox once nothing was appended for this long (PEXPIRE).
	// A since older than what is kept gets a resync. Zero means 24h.
	Retention time.Duration
}

// The defaults of InboxConfig's zero values; cmd/herald's flags use them.
const (
	DefaultInboxMaxLen    = 100
	DefaultInboxRetention = 24 * time.Hour
)

func (c *InboxConfig) setDefaults() {
	if c.MaxLen == 0 {
		c.MaxLen = DefaultInboxMaxLen
	}
	if c.Retention == 0 {
		c.Retention = DefaultInboxRetention
	}
}

func (c *InboxConfig) validate() error {
	if c.MaxLen < 1 {
		return fmt.Errorf("fanout: inbox max len %d: must be at least 1", c.MaxLen)
	}
	if c.Retention < time.Millisecond {
		return fmt.Errorf("fanout: inbox retention %s: must be at least 1ms", c.Retention)
	}
	return nil
}

// Inbox is the per-user event store herald replays from. RedisInbox keeps it
// in Redis Streams (shared by every replica); MemoryInbox keeps it in the
// process (the embedded mode). Both are safe for concurrent use.
type Inbox interface {
	// Append stores payload, which must be a JSON object (ErrNotObject), as
	// the next event of userID and publishes its frame (InboxFrame) to the
	// user's sockets, in one atomic step. It returns the event's id.
	Append(ctx context.Context, userID string, payload []byte) (id string, err error)
	// Read returns the inbox's newest id (Head) and, when since is not
	// empty, the events after since, oldest first. An inbox that does not
	// exist is created (with a marker entry, never delivered) so that Head
	// is always an id the next Read can start from. Gap is set, and Events
	// left empty, when the events after since cannot all be given: since is
	// malformed, newer than Head, older than the oldest entry kept (trimmed,
	// expired, or lost with Redis), or more than MaxLen events follow it.
	Read(ctx context.Context, userID, since string) (InboxRead, error)
	// Close releases the inbox's resources (not the Redis client).
	Close() error
}

// InboxSyncReader is an Inbox that can publish a message on a user's
// channel in the same atomic step as its Read, the way Append publishes
// events: every event appended before the read reaches the user's channel
// before the message. The gateway's handshake uses it to learn when the
// events up to the head it read have all arrived (one round trip instead of
// a Read and a Publish).
type InboxSyncReader interface {
	// ReadSync is Read, and publishes sync to userID's channel once the
	// head is read.
	ReadSync(ctx context.Context, userID, since string, sync []byte) (InboxRead, error)
}

// InboxRead is the result of Inbox.Read.
type InboxRead struct {
	Head   string       // the newest id at the time of the read
	Gap    bool         // the events after since cannot all be given
	Events []InboxEvent // after since, oldest first; empty with Gap
}

// InboxEvent is one stored event.
type InboxEvent struct {
	ID      string
	Payload []byte
}

// inboxIDPrefix starts every inbox frame.
const inboxIDPrefix = `{"inbox_id":"`

// InboxFrame returns the text a socket receives for the inbox event id with
// payload: payload with "inbox_id" spliced in as its first member. payload
// must start with '{' (see ErrNotObject). The Lua script of the publish path
// builds the same bytes.
func InboxFrame(id string, payload []byte) []byte {
	rest := payload[1:]
	b := make([]byte, 0, len(inboxIDPrefix)+len(id)+2+len(rest))
	b = append(b, inboxIDPrefix...)
	b = append(b, id...)
	b = append(b, '"')
	if !emptyObjectRest(rest) {
		b = append(b, ',')
	}
	return append(b, rest...)
}

// emptyObjectRest reports whether rest, a payload after its '{', starts
// with optional whitespace and '}' (Lua's %s*} in the script).
func emptyObjectRest(rest []byte) bool {
	t := bytes.TrimLeft(rest, " \t\n\r\v\f")
	return len(t) > 0 && t[0] == '}'
}

// InboxFrameID returns the inbox id an inbox frame carries, or false for any
// other payload (a plain PUBLISH, a broadcast). It does not allocate.
func InboxFrameID(payload []byte) (string, bool) {
	if !bytes.HasPrefix(payload, []byte(inboxIDPrefix)) {
		return "", false
	}
	rest := payload[len(inboxIDPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	return string(rest[:end]), true
}

// checkInboxPayload refuses what InboxFrame cannot splice into, and a
// payload with a top-level "inbox_id" of its own (ErrInboxIDInPayload).
// Only a payload that holds the text inbox_id or an escape (a key may be
// written "inbox\u005fid") is parsed; one that then does not parse as a
// JSON object is refused as ErrNotObject. The append script applies the
// same rules.
func checkInboxPayload(payload []byte) error {
	if len(payload) == 0 || payload[0] != '{' {
		return ErrNotObject
	}
	if !bytes.Contains(payload, []byte("inbox_id")) && !bytes.Contains(payload, []byte(`\u`)) {
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return fmt.Errorf("%w: %v", ErrNotObject, err)
	}
	if _, ok := top["inbox_id"]; ok {
		return ErrInboxIDInPayload
	}
	return nil
}

// StreamID is a parsed inbox id: a Redis Stream id "<ms>-<seq>".
type StreamID struct {
	MS, Seq uint64
}

// maxLuaInt is the largest integer a Lua 5.1 number (a double) holds
// exactly; the scripts compare ids as numbers.
const maxLuaInt = 1 << 53

// ParseStreamID parses "<ms>-<seq>" (decimal, each at most 2^53). It
// reports false for anything else, including a bare "<ms>".
func ParseStreamID(s string) (StreamID, bool) {
	ms, seq, ok := strings.Cut(s, "-")
	if !ok || !allDigits(ms) || !allDigits(seq) {
		return StreamID{}, false
	}
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || a > maxLuaInt || b > maxLuaInt {
		return StreamID{}, false
	}
	return StreamID{MS: a, Seq: b}, true
}

func allDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the id as Redis does.
func (id StreamID) String() string {
	return strconv.FormatUint(id.MS, 10) + "-" + strconv.FormatUint(id.Seq, 10)
}

// Compare returns -1, 0 or +1 as id is before, equal to or after o.
func (id StreamID) Compare(o StreamID) int {
	switch {
	case id.MS < o.MS, id.MS == o.MS && id.Seq < o.Seq:
		return -1
	case id == o:
		return 0
	}
	return 1
}
