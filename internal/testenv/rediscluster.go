package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster of redis-server processes owned by one
// test, on loopback, with a short cluster-node-timeout so that a failover
// takes a few seconds.
type RedisCluster struct {
	t     testing.TB
	Nodes []*Redis // masters first, as created; roles change on failover
}

// ClusterNodeTimeout is the cluster-node-timeout of StartRedisCluster: a
// master unreachable this long is failed over.
const ClusterNodeTimeout = 1000 * time.Millisecond

// StartRedisCluster starts masters × (1 + replicas) nodes, creates the
// cluster with redis-cli --cluster create, and waits until every node sees
// every slot served and every replica attached.
func StartRedisCluster(t testing.TB, masters, replicas int) *RedisCluster {
	t.Helper()
	cli := LookBinary(t, "redis-cli", "redis-tools")
	c := &RedisCluster{t: t}
	n := masters * (1 + replicas)
	var addrs []string
	for range n {
		port := freeClusterPort(t)
		c.Nodes = append(c.Nodes, startRedis(t, port, []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", itoa(int(ClusterNodeTimeout / time.Millisecond)),
			// A replica may always take over, however stale: the tests kill
			// masters on purpose.
			"--cluster-replica-validity-factor", "0",
			"--cluster-allow-pubsubshard-when-down", "yes",
		}))
		addrs = append(addrs, c.Nodes[len(c.Nodes)-1].Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	Eventually(t, 30*time.Second, func() error { return c.healthy(masters, replicas) })
	return c
}

// freeClusterPort returns a free port p whose cluster bus port p+10000 is
// free too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := 20000 + rand.IntN(25000)
		l1, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p+10000)))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// healthy reports nil when every live node answers cluster_state:ok and
// lists masters slot ranges, each with replicas replicas.
func (c *RedisCluster) healthy(masters, replicas int) error {
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			cl.Close()
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			cl.Close()
			return fmt.Errorf("%s: cluster state not ok", n.Addr())
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil {
			return err
		}
		owners := map[string]bool{}
		for _, s := range slots {
			if len(s.Nodes) != 1+replicas {
				return fmt.Errorf("%s: slots %d-%d served by %d nodes, want %d", n.Addr(), s.Start, s.End, len(s.Nodes), 1+replicas)
			}
			owners[s.Nodes[0].Addr] = true
		}
		if len(owners) != masters {
			return fmt.Errorf("%s: %d masters, want %d", n.Addr(), len(owners), masters)
		}
	}
	return nil
}

// Addrs returns every node's host:port.
func (c *RedisCluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Client returns a cluster client, closed when the test ends.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cl := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       c.Addrs(),
		DialTimeout: time.Second,
		// go-redis's default, 60s, would keep sending to a dead master for
		// up to a minute: a refused connection does not trigger a reload.
		ClusterStateReloadInterval: time.Second,
	})
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// Node returns the node listening on addr, or nil.
func (c *RedisCluster) Node(addr string) *Redis {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// MasterOf asks a live node which master serves slot, and returns its
// address ("" if none).
func (c *RedisCluster) MasterOf(slot int) string {
	c.t.Helper()
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		slots, err := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int(s.Start) <= slot && slot <= int(s.End) {
				return s.Nodes[0].Addr
			}
		}
		return ""
	}
	return ""
}

// Masters returns the addresses of the masters that serve slots, as a live
// node sees them.
func (c *RedisCluster) Masters() []string {
	seen := map[string]bool{}
	var out []string
	for slot := 0; slot < 16384; {
		m := c.MasterOf(slot)
		if m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
		slot += 512
	}
	return out
}

// KeySlot asks a node for CLUSTER KEYSLOT of key.
func (c *RedisCluster) KeySlot(key string) int {
	c.t.Helper()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		s, err := cl.ClusterKeySlot(context.Background(), key).Result()
		cl.Close()
		if err == nil {
			return int(s)
		}
	}
	c.t.Fatal("CLUSTER KEYSLOT: no live node")
	return 0
}

// MigrateSlot moves slot (holding no keys) from its master to the master at
// to, the way redis-cli --cluster reshard does: IMPORTING on the target,
// MIGRATING on the source, then SETSLOT NODE on both and on every other
// master.
func (c *RedisCluster) MigrateSlot(slot int, to string) {
	c.t.Helper()
	ctx := context.Background()
	from := c.MasterOf(slot)
	if from == to {
		c.t.Fatalf("slot %d is already on %s", slot, to)
	}
	id := func(addr string) string {
		cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer cl.Close()
		s, err := cl.Do(ctx, "cluster", "myid").Text()
		if err != nil {
			c.t.Fatalf("CLUSTER MYID %s: %v", addr, err)
		}
		return s
	}
	fromID, toID := id(from), id(to)
	do := func(addr string, args ...any) {
		cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer cl.Close()
		if err := cl.Do(ctx, args...).Err(); err != nil {
			c.t.Fatalf("%s %v: %v", addr, args, err)
		}
	}
	do(to, "cluster", "setslot", slot, "importing", fromID)
	do(from, "cluster", "setslot", slot, "migrating", toID)
	do(to, "cluster", "setslot", slot, "node", toID)
	do(from, "cluster", "setslot", slot, "node", toID)
	for _, m := range c.Masters() {
		if m != from && m != to {
			do(m, "cluster", "setslot", slot, "node", toID)
		}
	}
}
