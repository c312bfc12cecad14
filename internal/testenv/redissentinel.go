package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSentinel is a primary, one replica and three sentinels, owned by one
// test, on loopback. The sentinels declare the primary down after
// SentinelDownAfter, so a failover takes a few seconds.
type RedisSentinel struct {
	t         testing.TB
	Master    string   // the master set's name
	Primary   *Redis   // the primary at start
	Replica   *Redis   // its replica at start
	Sentinels []*Redis // redis-server --sentinel
}

// SentinelDownAfter is the sentinels' down-after-milliseconds.
const SentinelDownAfter = 1000 * time.Millisecond

// StartRedisSentinel starts the set and waits until every sentinel knows
// the replica and the two other sentinels, so that a failover can reach its
// quorum of 2.
func StartRedisSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	s := &RedisSentinel{t: t, Master: "mymaster"}
	s.Primary = StartRedis(t)
	s.Replica = startRedis(t, FreePort(t), []string{"--replicaof", "127.0.0.1", itoa(s.Primary.Port())})
	for range 3 {
		port := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := strings.Join([]string{
			"port " + itoa(port),
			"bind 127.0.0.1",
			"daemonize no",
			"dir " + dir,
			"loglevel warning",
			"sentinel resolve-hostnames no",
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", s.Master, s.Primary.Port()),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.Master, SentinelDownAfter/time.Millisecond),
			fmt.Sprintf("sentinel failover-timeout %s 4000", s.Master),
			fmt.Sprintf("sentinel parallel-syncs %s 1", s.Master),
			"",
		}, "\n")
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, startRedisArgv(t, port, dir, []string{conf, "--sentinel"}))
	}
	ctx := context.Background()
	Eventually(t, 30*time.Second, func() error {
		for _, sn := range s.Sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, DialTimeout: time.Second})
			replicas, err1 := c.Replicas(ctx, s.Master).Result()
			sentinels, err2 := c.Sentinels(ctx, s.Master).Result()
			c.Close()
			if err1 != nil || err2 != nil {
				return fmt.Errorf("%s: %v %v", sn.Addr(), err1, err2)
			}
			if len(replicas) != 1 || len(sentinels) != 2 {
				return fmt.Errorf("%s knows %d replicas and %d other sentinels, want 1 and 2", sn.Addr(), len(replicas), len(sentinels))
			}
		}
		return nil
	})
	return s
}

// URL is herald's --redis-url for the set.
func (s *RedisSentinel) URL() string {
	var addrs []string
	for _, sn := range s.Sentinels {
		addrs = append(addrs, sn.Addr())
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/" + s.Master
}

// PrimaryAddr returns the primary's host:port as the first live sentinel
// reports it.
func (s *RedisSentinel) PrimaryAddr() (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, DialTimeout: time.Second})
		a, err := c.GetMasterAddrByName(context.Background(), s.Master).Result()
		c.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel answered: %v", last)
}
