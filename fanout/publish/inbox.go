package publish

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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
// This file is the append half, which publishers run; the stores and the
// read half are in fanout/inbox.

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
// values: herald catches a reconnect up on at most MaxLen events.
type InboxConfig struct {
	// MaxLen caps the events a reconnect catches up on: a reconnect that
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

// WithDefaults returns c with its zero values replaced by the defaults.
func (c InboxConfig) WithDefaults() InboxConfig {
	if c.MaxLen == 0 {
		c.MaxLen = DefaultInboxMaxLen
	}
	if c.Retention == 0 {
		c.Retention = DefaultInboxRetention
	}
	return c
}

// Validate refuses bounds no inbox can keep: a MaxLen below 1, a Retention
// below a millisecond.
func (c InboxConfig) Validate() error {
	if c.MaxLen < 1 {
		return fmt.Errorf("fanout: inbox max len %d: must be at least 1", c.MaxLen)
	}
	if c.Retention < time.Millisecond {
		return fmt.Errorf("fanout: inbox retention %s: must be at least 1ms", c.Retention)
	}
	return nil
}

// AppendScript is the publish path of the inbox, for every language (the
// file fanout/publish/inbox_append.lua): it appends ARGV[2] (a JSON object) to the
// stream KEYS[1], trims the stream to about ARGV[3] entries and to ARGV[4]
// milliseconds of age, lets it expire after ARGV[4] ms without appends,
// and PUBLISHes the event's frame (the payload with "inbox_id" spliced in
// first) on the channel ARGV[1]. It returns {id, receivers}. It touches
// one key, so it runs unchanged on Redis Cluster. The README shows how to
// call it with EVAL.
//
//go:embed inbox_append.lua
var AppendScript string

var appendScript = redis.NewScript(AppendScript)

// appendEvent runs AppendScript; it returns the event id and the PUBLISH
// receivers. The script is never retried by go-redis, whatever the
// client's MaxRetries: after a connection dropped with the script already
// run, a retry would store and publish the event twice.
func appendEvent(ctx context.Context, c cmdProcessor, ch Channels, cfg InboxConfig, userID string, payload []byte) (string, int64, error) {
	if userID == "" {
		return "", 0, ErrInvalidTarget
	}
	if err := CheckInboxPayload(payload); err != nil {
		return "", 0, err
	}
	publish := "PUBLISH"
	if ch.Sharded() {
		publish = "SPUBLISH" // the channel shares the stream's hash slot
	}
	res, err := runOnce(ctx, c, appendScript.Hash(), AppendScript, []string{ch.Inbox(userID)},
		ch.User(userID), payload, cfg.MaxLen, cfg.Retention.Milliseconds(), publish).Slice()
	if err != nil {
		return "", 0, fmt.Errorf("fanout: inbox append for %s: %w", userID, err)
	}
	if len(res) != 2 {
		return "", 0, fmt.Errorf("fanout: inbox append for %s: unexpected reply %v", userID, res)
	}
	id, _ := res[0].(string)
	n, _ := res[1].(int64)
	return id, n, nil
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

// CheckInboxPayload refuses what InboxFrame cannot splice into
// (ErrNotObject), and a payload with a top-level "inbox_id" of its own
// (ErrInboxIDInPayload). Only a payload that holds the text inbox_id or an
// escape (a key may be written "inbox\u005fid") is parsed; one that then
// does not parse as a JSON object is refused as ErrNotObject. The append
// script applies the same rules.
func CheckInboxPayload(payload []byte) error {
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

// cmdProcessor is the part of a go-redis client that runs a command.
type cmdProcessor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// runOnce runs the script src by its hash and, if Redis does not know it
// yet, in full, each as a command go-redis does not retry (see noRetryCmd).
func runOnce(ctx context.Context, c cmdProcessor, hash, src string, keys []string, args ...any) *redis.Cmd {
	evalArgs := func(name, body string) []any {
		a := append([]any{name, body, len(keys)}, toAny(keys)...)
		return append(a, args...)
	}
	cmd := noRetryCmd{redis.NewCmd(ctx, evalArgs("evalsha", hash)...)}
	_ = c.Process(ctx, cmd)
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		cmd = noRetryCmd{redis.NewCmd(ctx, evalArgs("eval", src)...)}
		_ = c.Process(ctx, cmd)
	}
	return cmd.Cmd
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// noRetryCmd is a command go-redis runs at most once, whatever the client's
// MaxRetries.
type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }
