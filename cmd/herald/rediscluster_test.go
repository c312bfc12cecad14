package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestRedisClusterMode runs 2 herald replicas on a 3-master Redis Cluster
// with one replica per master, users spread over every shard with a socket
// on each herald, and checks delivery to users and to sockets (sharded
// channels both), then delivery across a master's failover and across a
// slot migration, both under a steady publish load.
func TestRedisClusterMode(t *testing.T) {
	rc := testenv.StartRedisCluster(t, 3, 1)
	f := startFleet(t, 2, "HERALD_REDIS_CLUSTER="+strings.Join(rc.Addrs(), ","))
	f.waitReady(20 * time.Second)
	client := rc.Client()
	pub, err := publish.NewPublisher(client, publish.PublisherConfig{NoInbox: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Three users per master, found by asking the cluster for their slots.
	masters := rc.Masters()
	if len(masters) != 3 {
		t.Fatalf("masters = %v, want 3", masters)
	}
	byMaster := map[string][]string{}
	slotOf := map[string]int{}
	for i := 0; len(byMaster) < 3 || !full(byMaster, 3); i++ {
		user := fmt.Sprintf("u%d", i)
		slot := rc.KeySlot("user:{" + user + "}")
		m := rc.MasterOf(slot)
		if len(byMaster[m]) < 3 {
			byMaster[m] = append(byMaster[m], user)
			slotOf[user] = slot
		}
	}
	socks := map[string][]*sock{} // by user, one per herald
	var all []*sock
	for _, users := range byMaster {
		for _, u := range users {
			for i := range f.heralds {
				s := f.connect(i, u)
				socks[u] = append(socks[u], s)
				all = append(all, s)
			}
		}
	}
	if n := mastersWithJTI(t, client); n < 2 {
		t.Errorf("jti keys on %d masters, want them spread over at least 2 of 3", n)
	}

	// Delivery: each user's message reaches its two sockets, on two heralds.
	for u, ss := range socks {
		msg := `{"type":"hello","to":"` + u + `"}`
		if n, err := pub.SendToUser(ctx, u, []byte(msg)); err != nil || n != 2 {
			t.Fatalf("SPUBLISH to %s: %d receivers, %v; want 2 (one per herald)", u, n, err)
		}
		waitAll(t, 10*time.Second, ss, msg)
	}
	for u := range socks {
		n := shardNumSub(t, rc, slotOf[u], "user:{"+u+"}")
		if n != 2 {
			t.Fatalf("SHARDNUMSUB user:{%s} = %d, want 2", u, n)
		}
	}
	if _, err := pub.Broadcast(ctx, []byte(`{"type":"all"}`)); err != nil {
		t.Fatal(err)
	}
	waitAll(t, 10*time.Second, all, `{"type":"all"}`)
	// Socket channels are sharded too: a backend's SPUBLISH on
	// socket:{<id>} reaches exactly that socket, through the one herald
	// subscribed to it on the socket's master.
	sockSlot := map[*sock]int{}
	sockMasters := map[string]bool{}
	for _, s := range all {
		sockSlot[s] = rc.KeySlot("socket:{" + s.id + "}")
		sockMasters[rc.MasterOf(sockSlot[s])] = true
		msg := `{"type":"one","to":"` + s.id + `"}`
		if n, err := client.SPublish(ctx, "socket:{"+s.id+"}", msg).Result(); err != nil || n != 1 {
			t.Fatalf("SPUBLISH socket:{%s}: %d receivers, %v; want 1", s.id, n, err)
		}
		waitAll(t, 10*time.Second, []*sock{s}, msg)
	}
	if len(sockMasters) < 2 {
		t.Errorf("socket channels on %d masters, want them spread over at least 2 of 3", len(sockMasters))
	}
	for _, s := range all {
		for _, m := range s.after(0) {
			if strings.HasPrefix(m, `{"type":"one"`) && m != `{"type":"one","to":"`+s.id+`"}` {
				t.Errorf("socket %s received another socket's message %s", s.id, m)
			}
		}
	}
	// socketResumes waits until every socket whose channel is on a slot of
	// slots has a resync after from[s], and then receives a message sent
	// to it alone.
	socketResumes := func(t *testing.T, slots map[int]bool, from map[*sock]int) {
		t.Helper()
		for _, s := range all {
			if !slots[sockSlot[s]] {
				continue
			}
			// Waits for a resync after from[s]: the socket may hold an
			// earlier one (its slot's master failed over before).
			testenv.Eventually(t, 30*time.Second, func() error {
				if s.index(resyncMsg, from[s]) < 0 {
					return fmt.Errorf("socket %s: no resync after the move", s.id)
				}
				return nil
			})
			msg := `{"type":"after","to":"` + s.id + `"}`
			testenv.Eventually(t, 30*time.Second, func() error {
				if n, err := client.SPublish(ctx, "socket:{"+s.id+"}", msg).Result(); err != nil || n != 1 {
					return fmt.Errorf("SPUBLISH socket:{%s}: %d receivers, %v; want 1", s.id, n, err)
				}
				return nil
			})
			waitAll(t, 10*time.Second, []*sock{s}, msg)
			if n := shardNumSub(t, rc, sockSlot[s], "socket:{"+s.id+"}"); n != 1 {
				t.Errorf("SHARDNUMSUB socket:{%s} on its new master = %d, want 1", s.id, n)
			}
		}
	}

	// A steady load: every user gets a numbered message every 20 ms.
	var seq atomic.Int64
	stop := make(chan struct{})
	var load sync.WaitGroup
	load.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 3000 { // bounded: at most a minute
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := seq.Add(1)
			for u := range socks {
				c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				_, _ = pub.SendToUser(c, u, []byte(fmt.Sprintf(`{"seq":%d,"to":"%s"}`, n, u)))
				cancel()
			}
		}
	})
	defer func() { close(stop); load.Wait() }()

	// resumes waits until every socket of users has a resync and then a
	// load message published after it.
	resumes := func(t *testing.T, users []string, from map[*sock]int) {
		t.Helper()
		testenv.Eventually(t, 30*time.Second, func() error {
			for _, u := range users {
				for _, s := range socks[u] {
					i := s.index(resyncMsg, from[s])
					if i < 0 {
						return fmt.Errorf("socket of %s on replica %d: no resync yet", u, s.replica)
					}
					if !hasLoadAfter(s, i+1, u) {
						return fmt.Errorf("socket of %s on replica %d: nothing since the resync", u, s.replica)
					}
				}
			}
			return nil
		})
	}
	marks := func() map[*sock]int {
		m := map[*sock]int{}
		for _, s := range all {
			m[s] = s.count()
		}
		return m
	}

	t.Run("master failover", func(t *testing.T) {
		victim := masters[0]
		users := byMaster[victim]
		victimSlots := map[int]bool{}
		for _, s := range all {
			if rc.MasterOf(sockSlot[s]) == victim {
				victimSlots[sockSlot[s]] = true
			}
		}
		from := marks()
		rc.Node(victim).Kill()
		testenv.Eventually(t, 30*time.Second, func() error {
			if m := rc.MasterOf(slotOf[users[0]]); m == victim || m == "" {
				return fmt.Errorf("slot %d still on %q", slotOf[users[0]], m)
			}
			return nil
		})
		resumes(t, users, from)
		for _, u := range users {
			if n := shardNumSub(t, rc, slotOf[u], "user:{"+u+"}"); n != 2 {
				t.Errorf("SHARDNUMSUB user:{%s} on the promoted master = %d, want 2", u, n)
			}
		}
		socketResumes(t, victimSlots, from)
		// The other shards' users kept receiving.
		for _, u := range byMaster[masters[1]] {
			for _, s := range socks[u] {
				if !hasLoadAfter(s, from[s], u) {
					t.Errorf("user %s on a healthy shard received nothing during the failover", u)
				}
			}
		}
		f.waitReady(20 * time.Second)
	})

	t.Run("slot migration", func(t *testing.T) {
		u := byMaster[masters[1]][0]
		target := rc.MasterOf(slotOf[byMaster[masters[2]][0]])
		// And a socket channel's slot, from another master to target.
		var moved *sock
		for _, s := range all {
			if m := rc.MasterOf(sockSlot[s]); m != target && sockSlot[s] != slotOf[u] {
				moved = s
				break
			}
		}
		from := marks()
		rc.MigrateSlot(slotOf[u], target)
		if moved != nil {
			rc.MigrateSlot(sockSlot[moved], target)
		}
		resumes(t, []string{u}, from)
		if n := shardNumSub(t, rc, slotOf[u], "user:{"+u+"}"); n != 2 {
			t.Errorf("SHARDNUMSUB user:{%s} on its new master = %d, want 2", u, n)
		}
		if moved == nil {
			t.Fatal("no socket channel off the target master")
		}
		socketResumes(t, map[int]bool{sockSlot[moved]: true}, from)
	})
	// Through the failover and the migration, every line on stderr is
	// JSON: go-redis' own complaints (failed dials) go through zap.
	f.requireJSONLogs()
}

func full(m map[string][]string, n int) bool {
	for _, v := range m {
		if len(v) < n {
			return false
		}
	}
	return true
}

// hasLoadAfter reports whether s received a load message for u at or after
// position i.
func hasLoadAfter(s *sock, i int, u string) bool {
	for _, m := range s.after(i) {
		if strings.HasPrefix(m, `{"seq":`) && strings.HasSuffix(m, `"to":"`+u+`"}`) {
			return true
		}
	}
	return false
}

// shardNumSub returns PUBSUB SHARDNUMSUB channel on the master of slot.
func shardNumSub(t *testing.T, rc *testenv.RedisCluster, slot int, channel string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rc.MasterOf(slot), MaxRetries: -1})
	defer c.Close()
	n, err := c.PubSubShardNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB SHARDNUMSUB %s: %v", channel, err)
	}
	return n[channel]
}

// mastersWithJTI counts the masters holding at least one jti key.
func mastersWithJTI(t *testing.T, c *redis.ClusterClient) int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, "jti:*").Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			mu.Lock()
			n++
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
