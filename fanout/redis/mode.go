package redis

import (
	"sort"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
)

// mode is what a session subscribes, and how: a value fixed when the
// session is made.
type mode struct {
	// sharded makes the session one master's shard of a Redis Cluster: it
	// has no static subscription, its keys are user and socket channel
	// names, subscribed with SSUBSCRIBE, one hash slot a command, as Redis
	// requires. Otherwise the session is classic (one Redis, a Sentinel
	// primary, or a cluster's connection for broadcasts and control): static
	// subscriptions, and its keys are user ids, subscribed with SUBSCRIBE.
	sharded bool
}

var (
	classicMode = mode{}
	shardMode   = mode{sharded: true}
)

// channel returns the channel that key names.
func (m mode) channel(ch publish.Channels, key string) string {
	if m.sharded {
		return key
	}
	return ch.User(key)
}

// confirmed returns the key that a subscription reply of kind for channel
// confirms, or false when the reply is not for one of the mode's keys.
func (m mode) confirmed(ch publish.Channels, kind, channel string) (string, bool) {
	switch {
	case m.sharded:
		return channel, kind == "ssubscribe"
	case kind == "subscribe":
		return ch.UserID(channel)
	}
	return "", false
}

// batches splits keys, which it may reorder, into the keys of one command
// each: at most size, and for a shard, of one hash slot.
func (m mode) batches(keys []string, size int) [][]string {
	var slots []int
	if m.sharded {
		slots = make([]int, len(keys))
		for i, k := range keys {
			slots[i] = keyslot.Of(k)
		}
		sort.Sort(bySlot{keys, slots})
	}
	var out [][]string
	for len(keys) > 0 {
		n := min(len(keys), size)
		if slots != nil {
			same := 1
			for same < n && slots[same] == slots[0] {
				same++
			}
			n = same
			slots = slots[n:]
		}
		out = append(out, keys[:n])
		keys = keys[n:]
	}
	return out
}

// verb returns the command that subscribes (or unsubscribes) the mode's
// channels. It is never sent without a channel: an empty UNSUBSCRIBE would
// mean all.
func (m mode) verb(subscribe bool) string {
	switch {
	case subscribe && m.sharded:
		return "SSUBSCRIBE"
	case subscribe:
		return "SUBSCRIBE"
	case m.sharded:
		return "SUNSUBSCRIBE"
	}
	return "UNSUBSCRIBE"
}

// bySlot sorts channels by their hash slot.
type bySlot struct {
	channels []string
	slots    []int
}

func (b bySlot) Len() int           { return len(b.channels) }
func (b bySlot) Less(i, j int) bool { return b.slots[i] < b.slots[j] }
func (b bySlot) Swap(i, j int) {
	b.channels[i], b.channels[j] = b.channels[j], b.channels[i]
	b.slots[i], b.slots[j] = b.slots[j], b.slots[i]
}
