package publish

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// ErrInvalidPrefix is returned for a channel prefix that cannot start every
// channel and key name: one holding a brace, a space or a control character.
var ErrInvalidPrefix = errors.New("fanout: invalid channel prefix")

// ErrUserIDNotRoutable is returned for a user id that Redis Cluster names
// cannot carry: one that begins with "}" (see Channels.CheckUserID).
var ErrUserIDNotRoutable = errors.New("fanout: user id cannot be a Redis Cluster hash tag")

// The parts of the channel names, after the prefix.
const (
	userPart      = "user:"
	socketPart    = "socket:"
	broadcastPart = "broadcast"
	exceptPart    = "broadcast:except:"
	controlPart   = "herald:control"
	inboxPart     = "inbox:" // a key, not a channel: the user's inbox stream
)

// Channels names the Redis channels of one deployment. Every name starts with
// the deployment's prefix:
//
//	<prefix>user:<user_id>                  ToUser
//	<prefix>socket:<socket_id>              ToSocket
//	<prefix>broadcast                       ToAll
//	<prefix>broadcast:except:<user_id>      ToAll with ID set (AllExcept)
//	<prefix>herald:control                  Control commands, as JSON
//
// In a Redis Cluster (NewShardedChannels) a user's channel is
// "<prefix>user:{<user_id>}" and a socket's "<prefix>socket:{<socket_id>}"
// instead: the braces are a hash tag, so the channel lives on the shard that
// owns the slot of the id, and its messages travel by sharded pub/sub
// (SPUBLISH, SSUBSCRIBE). The other names are the same in both modes.
//
// The zero value has an empty prefix. Channels is a small value, safe to copy
// and to use from any goroutine.
type Channels struct {
	prefix  string
	sharded bool
}

// NewChannels returns the names under prefix ("" for none), for one Redis
// or a Sentinel-managed primary.
func NewChannels(prefix string) Channels { return Channels{prefix: prefix} }

// NewShardedChannels returns the names under prefix for a Redis Cluster,
// whose user and socket channels carry a hash tag.
func NewShardedChannels(prefix string) Channels { return Channels{prefix: prefix, sharded: true} }

// ChannelsFor returns the names a client of this kind publishes on:
// sharded for a *redis.ClusterClient, plain otherwise. It is the one place
// where the Redis mode picks the names (and so SPUBLISH or PUBLISH).
func ChannelsFor(client redis.UniversalClient, prefix string) Channels {
	if _, ok := client.(*redis.ClusterClient); ok {
		return NewShardedChannels(prefix)
	}
	return NewChannels(prefix)
}

// Sharded reports whether user and socket channels are sharded (Redis
// Cluster names).
func (c Channels) Sharded() bool { return c.sharded }

// Prefix returns the prefix every name starts with.
func (c Channels) Prefix() string { return c.prefix }

// User returns the channel of userID's messages.
func (c Channels) User(userID string) string { return c.tagged(userPart, userID) }

// Socket returns the channel of one socket's messages.
func (c Channels) Socket(socketID string) string { return c.tagged(socketPart, socketID) }

// tagged returns the channel of a user or a socket: the id in braces (a
// hash tag) when sharded.
func (c Channels) tagged(part, id string) string {
	if c.sharded {
		return c.prefix + part + "{" + id + "}"
	}
	return c.prefix + part + id
}

// Inbox returns the key of userID's inbox stream: "<prefix>inbox:<user_id>",
// or "<prefix>inbox:{<user_id>}" with sharded names, so that the stream
// and the user's channel share a hash slot in a Redis Cluster.
func (c Channels) Inbox(userID string) string { return c.tagged(inboxPart, userID) }

// CheckUserID reports whether userID can be carried by these names. With
// plain names every id can. With sharded names Redis hashes the text
// between the first "{" and the first "}" after it: an id that begins with
// "}" leaves that text empty, so Redis hashes each whole name and the
// user's channel and inbox land on different slots (a script touching both
// is refused). Such an id gets ErrUserIDNotRoutable. Any other id works:
// for "a}b" the hash tag is "a", the same in every name of the user.
func (c Channels) CheckUserID(userID string) error {
	if c.sharded && strings.HasPrefix(userID, "}") {
		return fmt.Errorf("%w: %q begins with \"}\"", ErrUserIDNotRoutable, userID)
	}
	return nil
}

// CheckPrefix returns ErrInvalidPrefix for a prefix that cannot start
// every channel and key name: a "{" or "}" would become (or break) the
// hash tag of every name on a Redis Cluster, and a space or control
// character cannot be given to redis-cli as it is. Any other text may be a
// prefix; glob characters are escaped in patterns.
func CheckPrefix(prefix string) error {
	for _, r := range prefix {
		if r == '{' || r == '}' || r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: %q holds %q (braces, spaces and control characters are refused)", ErrInvalidPrefix, prefix, r)
		}
	}
	return nil
}

// Broadcast returns the channel of messages for every socket.
func (c Channels) Broadcast() string { return c.prefix + broadcastPart }

// BroadcastExcept returns the channel of messages for every socket except
// those of userID.
func (c Channels) BroadcastExcept(userID string) string { return c.prefix + exceptPart + userID }

// Control returns the channel of control commands.
func (c Channels) Control() string { return c.prefix + controlPart }

// SocketPattern returns the PSUBSCRIBE pattern that matches the socket
// channels of every socket whose id is "<nodeID>.<suffix>", for unsharded
// names (sharded pub/sub has no patterns). Glob characters
// in the prefix are escaped, so the pattern matches the prefix literally.
// nodeID must satisfy ValidNodeID, whose alphabet has no glob characters.
func (c Channels) SocketPattern(nodeID string) string {
	return globEscape(c.prefix) + socketPart + nodeID + ".*"
}

// ExceptPattern returns the PSUBSCRIBE pattern that matches every
// BroadcastExcept channel.
func (c Channels) ExceptPattern() string {
	return globEscape(c.prefix) + exceptPart + "*"
}

// Name returns the channel a message for t is published on.
func (c Channels) Name(t Target) (string, error) {
	switch t.Kind {
	case ToUser:
		if t.ID != "" {
			return c.User(t.ID), nil
		}
	case ToSocket:
		if t.ID != "" {
			return c.Socket(t.ID), nil
		}
	case ToAll:
		if t.ID == "" {
			return c.Broadcast(), nil
		}
		return c.BroadcastExcept(t.ID), nil
	}
	return "", ErrInvalidTarget
}

// Parse returns the Target whose messages travel on channel. It reports
// false for the control channel (see IsControl) and for any name that is not
// one of this prefix's message channels, such as "<prefix>user:" with no id.
// Parse does not allocate.
func (c Channels) Parse(channel string) (Target, bool) {
	rest, ok := strings.CutPrefix(channel, c.prefix)
	if !ok {
		return Target{}, false
	}
	if id, ok := c.taggedID(rest, userPart); ok {
		return User(id), true
	}
	if id, ok := c.taggedID(rest, socketPart); ok {
		return Socket(id), true
	}
	if rest == broadcastPart {
		return All(), true
	}
	if id, ok := strings.CutPrefix(rest, exceptPart); ok && id != "" {
		return AllExcept(id), true
	}
	return Target{}, false
}

// IsControl reports whether channel is the control channel.
func (c Channels) IsControl(channel string) bool {
	return len(channel) == len(c.prefix)+len(controlPart) &&
		strings.HasPrefix(channel, c.prefix) && strings.HasSuffix(channel, controlPart)
}

// UserID returns the user id of a user channel.
func (c Channels) UserID(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, c.prefix)
	if !ok {
		return "", false
	}
	return c.taggedID(rest, userPart)
}

// taggedID returns the id of rest, a user or socket channel (part) without
// the prefix: "<part><id>", or "<part>{<id>}" when sharded.
func (c Channels) taggedID(rest, part string) (string, bool) {
	id, ok := strings.CutPrefix(rest, part)
	if !ok {
		return "", false
	}
	if c.sharded {
		if len(id) < 3 || id[0] != '{' || id[len(id)-1] != '}' {
			return "", false
		}
		id = id[1 : len(id)-1]
	}
	return id, id != ""
}

// globEscape backslash-escapes the characters Redis glob patterns give a
// meaning to.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ValidNodeID reports whether id can name a replica: 1 to 64 ASCII letters,
// digits, '_' or '-'. Such an id needs no escaping in a glob pattern and
// contains no '.', which separates it from the rest of a socket id.
func ValidNodeID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// NewNodeID returns a random node id of 8 lowercase hex characters.
func NewNodeID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
