package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
	"github.com/herald-gw/herald/internal/testenv"
)

// startThreeMasterCluster starts a real Redis Cluster of three masters
// without replicas: the smallest one redis-cli creates, whose slots can
// migrate.
func startThreeMasterCluster(t testing.TB) (*testenv.RedisCluster, *redis.ClusterClient) {
	t.Helper()
	rc := testenv.StartRedisCluster(t, 3, 0)
	return rc, rc.Client()
}

// otherMaster returns a master of rc other than addr.
func otherMaster(t testing.TB, rc *testenv.RedisCluster, addr string) string {
	t.Helper()
	for _, m := range rc.Masters() {
		if m != addr {
			return m
		}
	}
	t.Fatalf("no master other than %s", addr)
	return ""
}

// shardNumSubAt returns PUBSUB SHARDNUMSUB channel on the node at addr.
func shardNumSubAt(t testing.TB, addr, channel string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	n, err := c.PubSubShardNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB SHARDNUMSUB %s on %s: %v", channel, addr, err)
	}
	return n[channel]
}

// A broker whose slot map is stale sends SSUBSCRIBE to the slot's former
// master, which answers MOVED: the broker must follow the redirect, without
// waiting for its next slot map read, and the subscription must become
// active on the new master.
func TestRedisClusterFollowsMoved(t *testing.T) {
	testenv.NoLeaks(t)
	rc, cc := startThreeMasterCluster(t)
	// One read of the slot map at Start, and none for an hour after: the
	// map goes stale behind the broker's back.
	b, rec := startClusterBroker(t, cc, Config{RefreshInterval: time.Hour})
	fanouttest.WaitReady(t, b)

	// Two users on the same master; one stays, the other's slot moves.
	var stay, moved string
	from := ""
	for i := 0; moved == ""; i++ {
		u := "m" + strconv.Itoa(i)
		m := rc.MasterOf(keyslot.Of("user:{" + u + "}"))
		switch {
		case from == "":
			from, stay = m, u
		case m == from:
			moved = u
		}
	}
	fanouttest.WaitClosed(t, b.Subscribe(stay), 10*time.Second, stay)
	slot := keyslot.Of("user:{" + moved + "}")
	to := otherMaster(t, rc, from)
	rc.MigrateSlot(slot, to)

	fanouttest.WaitClosed(t, b.Subscribe(moved), 10*time.Second, moved+" after MOVED")
	if n := shardNumSubAt(t, to, "user:{"+moved+"}"); n != 1 {
		t.Fatalf("SHARDNUMSUB user:{%s} on the new master = %d, want 1", moved, n)
	}
	ctx := context.Background()
	if err := cc.SPublish(ctx, "user:{"+moved+"}", "after-moved").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User(moved), "after-moved")
	// The MOVED reply concerned one slot: the other user's subscription on
	// the former master is untouched (no reconnection, no resync).
	if err := cc.SPublish(ctx, "user:{"+stay+"}", "still-here").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User(stay), "still-here")
	if rec.Has(publish.User(stay), resyncPayload) {
		t.Errorf("user %s, on the master that answered MOVED, got a resync", stay)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := shardNumSubAt(t, from, "user:{"+stay+"}"); n != 1 {
			return fmt.Errorf("SHARDNUMSUB user:{%s} on its master = %d, want 1", stay, n)
		}
		return nil
	})
}

// Socket channels are sharded like user channels: each socket's channel is
// SSUBSCRIBEd on the master of its slot, so one replica's sockets spread
// over every shard; a message SPUBLISHed on socket:{<id>} reaches the
// handler as ToSocket; after a slot migration the channel is subscribed on
// the new master and the socket gets a resync.
func TestRedisClusterSocketChannels(t *testing.T) {
	testenv.NoLeaks(t)
	rc, cc := startThreeMasterCluster(t)
	b, rec := startClusterBroker(t, cc, Config{
		RefreshInterval:  100 * time.Millisecond,
		UnsubscribeGrace: time.Hour, // user channels'; socket channels have none
	})
	fanouttest.WaitReady(t, b)
	ch := publish.NewShardedChannels("")
	const sockets = 30
	ids := make([]string, sockets)
	for i := range ids {
		ids[i] = "n1." + strconv.Itoa(1000+i)
	}
	chans := make([]<-chan struct{}, sockets)
	for i, id := range ids {
		chans[i] = b.SubscribeSocket(id)
	}
	masters := map[string]bool{}
	for i, id := range ids {
		fanouttest.WaitClosed(t, chans[i], 10*time.Second, id)
		m := rc.MasterOf(keyslot.Of(ch.Socket(id)))
		masters[m] = true
		if n := shardNumSubAt(t, m, ch.Socket(id)); n != 1 {
			t.Fatalf("SHARDNUMSUB %s on its master = %d, want 1", ch.Socket(id), n)
		}
	}
	if len(masters) != 3 {
		t.Fatalf("%d sockets on %d masters, want all 3", sockets, len(masters))
	}
	ctx := context.Background()
	for _, id := range ids {
		if n, err := cc.SPublish(ctx, ch.Socket(id), "to-"+id).Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH %s: %d receivers, %v; want 1", ch.Socket(id), n, err)
		}
	}
	for _, id := range ids {
		rec.WaitFor(t, publish.Socket(id), "to-"+id)
	}

	// Migrate the first socket's slot: resubscribed on the new master, and
	// a resync for that socket only.
	id := ids[0]
	slot := keyslot.Of(ch.Socket(id))
	to := otherMaster(t, rc, rc.MasterOf(slot))
	rc.MigrateSlot(slot, to)
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := shardNumSubAt(t, to, ch.Socket(id)); n != 1 {
			return fmt.Errorf("SHARDNUMSUB %s on the new master = %d, want 1", ch.Socket(id), n)
		}
		if !rec.Has(publish.Socket(id), resyncPayload) {
			return fmt.Errorf("no resync for socket %s", id)
		}
		return nil
	})
	if err := cc.SPublish(ctx, ch.Socket(id), "after-migration").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.Socket(id), "after-migration")
	for _, other := range ids[1:] {
		if keyslot.Of(ch.Socket(other)) != slot && rec.Has(publish.Socket(other), resyncPayload) {
			t.Errorf("socket %s, whose slot did not move, got a resync", other)
		}
	}

	// UnsubscribeSocket drops the channel at once: no grace.
	for _, id := range ids {
		b.UnsubscribeSocket(id)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		for _, m := range rc.Masters() {
			c := redis.NewClient(&redis.Options{Addr: m, MaxRetries: -1})
			n := len(c.PubSubShardChannels(ctx, "socket:*").Val())
			c.Close()
			if n != 0 {
				return fmt.Errorf("%s: %d socket channels still subscribed", m, n)
			}
		}
		return nil
	})
}

// sameSlotSockets returns n socket ids whose channels share one hash slot.
func sameSlotSockets(n int) []string {
	ch := publish.NewShardedChannels("")
	ids := []string{"n1.0"}
	slot := keyslot.Of(ch.Socket(ids[0]))
	for i := 1; len(ids) < n; i++ {
		if id := "n1." + strconv.Itoa(i); keyslot.Of(ch.Socket(id)) == slot {
			ids = append(ids, id)
		}
	}
	return ids
}

// clusterShardOf returns the address of the shard channel is homed on in
// b ("" if none).
func clusterShardOf(b *Cluster, channel string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.chans[keyslot.Of(channel)][channel]; c != nil && c.shard != nil {
		return c.shard.addr
	}
	return ""
}

// A slot moves while its new master is slow, and a socket of that slot
// closes before the new master confirms its SSUBSCRIBE: its entry is
// dropped unconfirmed. The other channels moved with it must still get
// their resync and become active, and the Subscribe call that was refused
// by MOVED (never active) must be released without a resync.
func TestRedisClusterMoveSurvivesDroppedChannel(t *testing.T) {
	testenv.NoLeaks(t)
	rc, cc := startThreeMasterCluster(t)
	// One read of the slot map at Start: the move is learnt from MOVED.
	b, rec := startClusterBroker(t, cc, Config{RefreshInterval: time.Hour})
	fanouttest.WaitReady(t, b)

	ch := publish.NewShardedChannels("")
	ids := sameSlotSockets(11)
	trigger, ids := ids[0], ids[1:] // subscribed after the migration
	var kept, dropped []string
	for i, id := range ids {
		fanouttest.WaitClosed(t, b.SubscribeSocket(id), 10*time.Second, id)
		if i%2 == 0 {
			kept = append(kept, id)
		} else {
			dropped = append(dropped, id)
		}
	}
	slot := keyslot.Of(ch.Socket(trigger))
	to := otherMaster(t, rc, rc.MasterOf(slot))
	rc.MigrateSlot(slot, to)

	// The new master answers nothing until resumed: its SSUBSCRIBEs stay
	// unconfirmed. Kept short, below the cluster's node timeout.
	node := rc.Node(to)
	node.Pause()
	resumed := false
	defer func() {
		if !resumed {
			node.Resume()
		}
	}()
	// Sent to the former master, which answers MOVED: every channel of
	// the slot moves to the paused master.
	triggered := b.SubscribeSocket(trigger)
	testenv.Eventually(t, 5*time.Second, func() error {
		for _, id := range append([]string{trigger}, ids...) {
			if got := clusterShardOf(b, ch.Socket(id)); got != to {
				return fmt.Errorf("%s on shard %q, want %s", id, got, to)
			}
		}
		return nil
	})
	for _, id := range dropped {
		b.UnsubscribeSocket(id)
	}
	// Wait until the new shard has flushed the unsubscribes: the dropped
	// channels are no longer sent (or gone) before any confirmation.
	b.mu.Lock()
	sh := b.shards[to]
	b.mu.Unlock()
	testenv.Eventually(t, 5*time.Second, func() error {
		sh.sess.mu.Lock()
		defer sh.sess.mu.Unlock()
		for _, id := range dropped {
			if e := sh.sess.subs.users[ch.Socket(id)]; e != nil && (e.sent || len(sh.sess.subs.dirty) > 0) {
				return fmt.Errorf("%s not flushed yet", id)
			}
		}
		return nil
	})
	node.Resume()
	resumed = true

	fanouttest.WaitClosed(t, triggered, 10*time.Second, trigger+" after MOVED")
	testenv.Eventually(t, 10*time.Second, func() error {
		for _, id := range kept {
			if !rec.Has(publish.Socket(id), resyncPayload) {
				return fmt.Errorf("no resync for socket %s", id)
			}
		}
		return nil
	})
	ctx := context.Background()
	for _, id := range append([]string{trigger}, kept...) {
		if err := cc.SPublish(ctx, ch.Socket(id), "after-move").Err(); err != nil {
			t.Fatal(err)
		}
		rec.WaitFor(t, publish.Socket(id), "after-move")
	}
	// The trigger was never active before the move: nothing was lost.
	if rec.Has(publish.Socket(trigger), resyncPayload) {
		t.Errorf("socket %s, refused by MOVED before it was ever active, got a resync", trigger)
	}
}
