package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartOneNodeCluster starts a redis-server in cluster mode that serves
// every slot itself: a real Redis Cluster of one master, enough for the
// commands (SSUBSCRIBE, SPUBLISH, CLUSTER SLOTS, KEYSLOT) without the cost
// of six processes. The failover and migration paths are tested with a
// real 3-master cluster in cmd/herald.
func StartOneNodeCluster(t testing.TB) (*Redis, *redis.ClusterClient) {
	t.Helper()
	srv := StartRedisArgs(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := srv.Client()
	ctx := context.Background()
	if err := admin.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	Eventually(t, 10*time.Second, func() error {
		info, err := admin.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("cluster not ok: %v", err)
		}
		return nil
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr()}, DialTimeout: time.Second})
	t.Cleanup(func() { _ = cc.Close() })
	return srv, cc
}
