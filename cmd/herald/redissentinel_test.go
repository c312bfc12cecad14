package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestRedisSentinelMode runs 2 herald replicas on a Sentinel-managed
// primary (1 replica, 3 sentinels), kills the primary and checks that new
// handshakes fail closed (1013, the jti store has no primary) until the
// sentinels promote the replica, and that herald then resubscribes on the
// new primary, resyncs every socket, delivers again and admits sockets.
func TestRedisSentinelMode(t *testing.T) {
	rs := testenv.StartRedisSentinel(t)
	f := startFleet(t, 2, "HERALD_REDIS_URL="+rs.URL())
	f.waitReady(20 * time.Second)
	var sentinels []string
	for _, s := range rs.Sentinels {
		sentinels = append(sentinels, s.Addr())
	}
	client := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: rs.Master, SentinelAddrs: sentinels, DialTimeout: time.Second})
	t.Cleanup(func() { client.Close() })
	pub, err := publish.NewPublisher(client, publish.PublisherConfig{NoInbox: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var all []*sock
	users := []string{"s1", "s2", "s3"}
	for _, u := range users {
		for i := range f.heralds {
			all = append(all, f.connect(i, u))
		}
	}
	for _, u := range users {
		msg := `{"type":"before","to":"` + u + `"}`
		if n, err := pub.SendToUser(ctx, u, []byte(msg)); err != nil || n != 2 {
			t.Fatalf("PUBLISH user:%s: %d receivers, %v; want 2", u, n, err)
		}
	}
	waitAll(t, 10*time.Second, all[:2], `{"type":"before","to":"s1"}`)

	old, err := rs.PrimaryAddr()
	if err != nil || old != rs.Primary.Addr() {
		t.Fatalf("primary = %q %v, want %s", old, err, rs.Primary.Addr())
	}
	rs.Primary.Kill()

	// No primary: a new socket is refused with 1013, not admitted unchecked.
	refused := 0
	for i := range 3 {
		ws, msg, err := f.dial(i%2, "late")
		if ws != nil {
			ws.Close()
		}
		var cf *testenv.CloseFrame
		if errors.As(err, &cf) && cf.Code == 1013 {
			refused++
			continue
		}
		if a, _ := rs.PrimaryAddr(); a != old {
			break // the failover was faster than this loop
		}
		t.Fatalf("handshake without a primary: %q %v, want close 1013", msg, err)
	}
	if refused == 0 {
		t.Fatal("no handshake was refused while the primary was down")
	}
	if !strings.Contains(f.heralds[0].Logs()+f.heralds[1].Logs(), `"reason":"replay_unavailable"`) {
		t.Error(`no "replay_unavailable" auth failure logged: the jti store did not fail closed`)
	}

	testenv.Eventually(t, 30*time.Second, func() error {
		a, err := rs.PrimaryAddr()
		if err != nil || a == old {
			return fmt.Errorf("no failover yet: %q %v", a, err)
		}
		if a != rs.Replica.Addr() {
			return fmt.Errorf("promoted %s, want the replica %s", a, rs.Replica.Addr())
		}
		return nil
	})
	waitAll(t, 30*time.Second, all, resyncMsg)
	f.waitReady(20 * time.Second)

	testenv.Eventually(t, 20*time.Second, func() error {
		for _, u := range users {
			if n, err := pub.SendToUser(ctx, u, []byte(`{"type":"after","to":"`+u+`"}`)); err != nil || n != 2 {
				return fmt.Errorf("PUBLISH user:%s on the new primary: %d receivers, %v", u, n, err)
			}
		}
		return nil
	})
	for _, s := range all {
		waitAll(t, 10*time.Second, []*sock{s}, `{"type":"after","to":"`+s.user+`"}`)
	}
	ws, msg, err := f.dial(0, "late")
	if err != nil || !strings.Contains(msg, `"type":"welcome"`) {
		t.Fatalf("handshake after the failover: %q %v", msg, err)
	}
	ws.Close()
	keys, err := rs.Replica.Client().Keys(ctx, "jti:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("jti keys on the new primary: %v %v", keys, err)
	}
	// From the start (go-redis announces the sentinel's choice) through the
	// failover, every line on stderr is JSON.
	f.requireJSONLogs()
}
