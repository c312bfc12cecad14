package fanout

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// shardNumSub returns PUBSUB SHARDNUMSUB channel on the node at addr.
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
	b, err := NewRedisCluster(cc, RedisConfig{NodeID: "n1", RefreshInterval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if err := b.Start(rec); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitReady(t, b)

	// Two users on the same master; one stays, the other's slot moves.
	var stay, moved string
	from := ""
	for i := 0; moved == ""; i++ {
		u := "m" + strconv.Itoa(i)
		m := rc.MasterOf(keySlot("user:{" + u + "}"))
		switch {
		case from == "":
			from, stay = m, u
		case m == from:
			moved = u
		}
	}
	waitClosed(t, b.Subscribe(stay), 10*time.Second, stay)
	slot := keySlot("user:{" + moved + "}")
	to := otherMaster(t, rc, from)
	rc.MigrateSlot(slot, to)

	waitClosed(t, b.Subscribe(moved), 10*time.Second, moved+" after MOVED")
	if n := shardNumSubAt(t, to, "user:{"+moved+"}"); n != 1 {
		t.Fatalf("SHARDNUMSUB user:{%s} on the new master = %d, want 1", moved, n)
	}
	ctx := context.Background()
	if err := cc.SPublish(ctx, "user:{"+moved+"}", "after-moved").Err(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, User(moved), "after-moved")
	// The MOVED reply concerned one slot: the other user's subscription on
	// the former master is untouched (no reconnection, no resync).
	if err := cc.SPublish(ctx, "user:{"+stay+"}", "still-here").Err(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, User(stay), "still-here")
	if rec.has(User(stay), resyncPayload) {
		t.Errorf("user %s, on the master that answered MOVED, got a resync", stay)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := shardNumSubAt(t, from, "user:{"+stay+"}"); n != 1 {
			return fmt.Errorf("SHARDNUMSUB user:{%s} on its master = %d, want 1", stay, n)
		}
		return nil
	})
}
