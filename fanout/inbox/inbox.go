package inbox

import (
	"context"
	"strconv"
	"strings"

	"github.com/herald-gw/herald/replay"
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

// Inbox is the per-user event store a reconnect catches up from. Redis keeps it
// in Redis Streams (shared by every replica); Memory keeps it in the
// process (the embedded mode). Both are safe for concurrent use.
type Inbox interface {
	// Append stores payload, which must be a JSON object (ErrNotObject), as
	// the next event of userID and publishes its frame (InboxFrame) to the
	// user's sockets, in one atomic step. It returns the event's id.
	Append(ctx context.Context, userID string, payload []byte) (id string, err error)
	// Read returns the inbox's newest id (Head) and, when since is not
	// empty, the events after since, oldest first. It writes nothing: for
	// a user who has no inbox, Head is a position (Position), which the
	// next Read can start from. Gap is
	// set, and Events left empty, when the events after since cannot all be
	// given: since is malformed, newer than Head, at or before an event the
	// inbox dropped (trimmed, expired, or lost with Redis), a position read
	// longer ago than the retention, or more than MaxLen events follow it.
	Read(ctx context.Context, userID, since string) (Result, error)
	// Close releases the inbox's resources (not the Redis client).
	Close() error
}

// SyncReader is an Inbox that can publish a message on a user's
// channel in the same atomic step as its Read, the way Append publishes
// events: every event appended before the read reaches the user's channel
// before the message. The gateway's handshake uses it to learn when the
// events up to the head it read have all arrived (one round trip instead of
// a Read and a Publish).
type SyncReader interface {
	// ReadSync is Read, and publishes sync to userID's channel once the
	// head is read.
	ReadSync(ctx context.Context, userID, since string, sync []byte) (Result, error)
}

// TokenReader is an Inbox whose handshake read also consumes the socket's
// WS token: the gateway's whole use of Redis in a handshake, beside the
// user's subscription, is one step.
type TokenReader interface {
	// ConsumeReadSync consumes u in store, by the rules and with the errors
	// of replay.Store's Consume, except that a token used before gets
	// replay.ErrReused; for the token's first use only, it then reads
	// u.User's inbox after since (Read) and, when sync is not nil,
	// publishes sync on the user's channel once the head is read
	// (SyncReader). The Redis inbox does it all in one script when store
	// is a *replay.Redis.
	ConsumeReadSync(ctx context.Context, store replay.Store, u replay.Use, since string, sync []byte) (Result, error)
}

// consumeThenRead is ConsumeReadSync in steps: store's Consume, then in's
// ReadSync (Read when sync is nil).
func consumeThenRead(ctx context.Context, in interface {
	Inbox
	SyncReader
}, store replay.Store, u replay.Use, since string, sync []byte) (Result, error) {
	first, err := store.Consume(ctx, u.JTI, u.MintedBy, u.Expires)
	switch {
	case err != nil:
		return Result{}, err
	case !first:
		return Result{}, replay.ErrReused
	case sync == nil:
		return in.Read(ctx, u.User, since)
	}
	return in.ReadSync(ctx, u.User, since, sync)
}

// Result is the result of Inbox.Read.
type Result struct {
	Head   string  // the newest id at the time of the read
	Gap    bool    // the events after since cannot all be given
	Events []Event // after since, oldest first; empty with Gap
}

// Event is one stored event.
type Event struct {
	ID      string
	Payload []byte
}

// PositionSeq is the sequence part of a position that is not an event's id:
// the head Read gives a user who has no inbox, "<ms>-9007199254740992",
// where ms is the millisecond before the read. It comes after every id
// generated before the read and before every id generated after it (while
// the clock does not step back), so positions keep growing; Read makes a
// since at it a gap once events after it may have been lost.
const PositionSeq = maxLuaInt

// Position returns the position of a read at nowMS of a user who has no
// inbox.
func Position(nowMS int64) StreamID { return StreamID{MS: uint64(max(nowMS-1, 0)), Seq: PositionSeq} }

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
