package redis

import (
	"strconv"
	"testing"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
)

// TestShardedChannelSlots: the hash tags of the sharded names place a
// user's channel on one slot whatever the prefix, and spread one node's
// sockets over the slots.
func TestShardedChannelSlots(t *testing.T) {
	// Every socket of a user hashes to one slot whatever the prefix.
	if keyslot.Of("app:user:{42}") != keyslot.Of("user:{42}") {
		t.Error("the prefix changed the slot of a hash-tagged channel")
	}
	// A socket's slot is its id's, not its node's: one replica's sockets
	// spread over the shards.
	slots := map[int]bool{}
	c := publish.NewShardedChannels("")
	for i := range 64 {
		slots[keyslot.Of(c.Socket("n1."+strconv.Itoa(i)))] = true
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
		if a, b := keyslot.Of(c.User(id)), keyslot.Of(c.Inbox(id)); a != b {
			t.Errorf("channel %s in slot %d, inbox %s in slot %d", c.User(id), a, c.Inbox(id), b)
		}
	}
}
