package redis

import (
	"strconv"
	"testing"

	"github.com/herald-gw/herald/fanout/publish"
)

// The expected slots are what Redis answers to CLUSTER KEYSLOT.
func TestKeySlot(t *testing.T) {
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 12739}, // CRC16/XMODEM check value 0x31C3
		{"foo", 12182},
		{"user:{42}", keySlot("42")},
		{"{user1000}.following", keySlot("user1000")},
		{"foo{}{bar}", keySlot("foo{}{bar}")}, // empty tag: the whole key
		{"foo{{bar}}zap", keySlot("{bar")},
		{"", 0},
	}
	for _, tt := range tests {
		if got := keySlot(tt.key); got != tt.want {
			t.Errorf("keySlot(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

// TestShardedChannelSlots: the hash tags of the sharded names place a
// user's channel on one slot whatever the prefix, and spread one node's
// sockets over the slots.
func TestShardedChannelSlots(t *testing.T) {
	// Every socket of a user hashes to one slot whatever the prefix.
	if keySlot("app:user:{42}") != keySlot("user:{42}") {
		t.Error("the prefix changed the slot of a hash-tagged channel")
	}
	// A socket's slot is its id's, not its node's: one replica's sockets
	// spread over the shards.
	slots := map[int]bool{}
	c := publish.NewShardedChannels("")
	for i := range 64 {
		slots[keySlot(c.Socket("n1."+strconv.Itoa(i)))] = true
	}
	if len(slots) < 32 {
		t.Errorf("64 sockets of one node hash to %d slots", len(slots))
	}
}

// TestCheckUserIDSlots: every user id that sharded names accept
// (publish.Channels.CheckUserID) puts the user's channel and inbox in one
// hash slot, which the append script needs.
func TestCheckUserIDSlots(t *testing.T) {
	c := publish.NewShardedChannels("app:")
	for _, id := range []string{"a}b", "{a", "{a}", "42", "}x"} {
		if c.CheckUserID(id) != nil {
			continue
		}
		if a, b := keySlot(c.User(id)), keySlot(c.Inbox(id)); a != b {
			t.Errorf("channel %s in slot %d, inbox %s in slot %d", c.User(id), a, c.Inbox(id), b)
		}
	}
}
