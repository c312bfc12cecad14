package presence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// waitFor waits until ev holds exactly want, calling poke (a Refresh that
// runs the due checks) between looks.
func waitFor(t *testing.T, ev *events, poke func(), want ...string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		poke()
		if got := ev.list(); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("events %v; want %v", got, want)
		}
		return nil
	})
}

// onlineOnA starts replica a with one socket of user u, and waits for u's
// online event.
func onlineOnA(t *testing.T, s presence.Store, ev *events) {
	t.Helper()
	ctx := context.Background()
	if err := s.Join(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Refresh(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, "a", []presence.Op{{User: "u", Delta: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ev, func() {}, "u:true")
}

// TestRedisPresenceKeysExpire: every key the store writes has an expiry,
// so that nothing outlives a cluster that is gone for good.
func TestRedisPresenceKeysExpire(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client()
	fill(t, rdb)
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		if d := rdb.PTTL(ctx, k).Val(); d <= 0 {
			t.Errorf("key %s has no expiry (PTTL %v)", k, d)
		}
	}
}

// TestRedisOnlineAfterReplicaKilled: a replica is SIGKILLed while its user
// is online, and its per-user counts expire before any other replica
// forgets it. The next replica still publishes the user's offline event,
// and the user's next socket its online event.
func TestRedisOnlineAfterReplicaKilled(t *testing.T) {
	ctx := context.Background()
	rdb := testenv.StartRedis(t).Client()
	ev := &events{}
	s := redisStore(t, rdb, rdb, ev)
	onlineOnA(t, s, ev)

	// a dies: nothing refreshes until its per-user counts have expired.
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := rdb.Exists(ctx, "t:presence:users:a").Val(); n != 0 {
			return fmt.Errorf("a's per-user counts still there")
		}
		return nil
	})
	if err := s.Join(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	refreshB := func() {
		if _, err := s.Refresh(ctx, "b", 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ev, refreshB, "u:true", "u:false")
	if _, err := s.Apply(ctx, "b", []presence.Op{{User: "u", Delta: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ev, refreshB, "u:true", "u:false", "u:true")
}

// TestRedisOnlineAfterRDBRestart: Redis is down longer than a replica's
// per-user counts live, the user's socket closes meanwhile, and Redis comes
// back from an RDB taken while the user was online. The user's offline
// event is still published, and its next socket's online event.
func TestRedisOnlineAfterRDBRestart(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	ev := &events{}
	s := redisStore(t, rdb, rdb, ev)
	onlineOnA(t, s, ev)

	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	expires, err := rdb.PExpireTime(ctx, "t:presence:users:a").Result()
	if err != nil || expires <= 0 {
		t.Fatalf("PEXPIRETIME of a's counts: %v, %v", expires, err)
	}
	r.Kill()
	// The outage outlasts a's per-user counts (the socket of u closed
	// meanwhile, and a could not record it).
	time.Sleep(time.Until(time.UnixMilli(int64(expires / time.Millisecond)).Add(50 * time.Millisecond)))
	r.Start()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := rdb.PubSubNumSub(ctx, "t:presence").Val()["t:presence"]; n != 1 {
			return fmt.Errorf("event subscription not restored")
		}
		return nil
	})

	// a finds its entry gone and rebuilds: Join, and no socket to count.
	m, err := s.Refresh(ctx, "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Rejoined {
		t.Fatal("Refresh after the restart: not Rejoined")
	}
	if err := s.Join(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	refreshA := func() {
		if _, err := s.Refresh(ctx, "a", 0); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ev, refreshA, "u:true", "u:false")
	if _, err := s.Apply(ctx, "a", []presence.Op{{User: "u", Delta: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ev, refreshA, "u:true", "u:false", "u:true")
}
