package redis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/internal/testenv"
)

// BenchmarkRedisCPU measures what docs/CAPACITY.md builds on: the CPU a
// redis-server spends (INFO cpu, user + sys, summed over every node) per
// message published on a user channel, with 0, 1 or 4 subscribed
// connections (herald replicas), in each mode:
//
//	single:    PUBLISH user:42 on one redis-server
//	sharded:   SPUBLISH user:{42} on a Redis Cluster node that owns the slot
//	cluster3:  PUBLISH on a 3-master Redis Cluster, subscribers on one node:
//	           what broadcast and control cost there (relayed to every node)
//
// Publishers are 4 connections sending one command at a time (no
// pipelining), as services do. Run with:
//
//	go test -run '^$' -bench BenchmarkRedisCPU -benchtime 40000x ./fanout/
func BenchmarkRedisCPU(b *testing.B) {
	for _, mode := range []string{"single", "sharded", "cluster3"} {
		for _, subs := range []int{0, 1, 4} {
			b.Run(mode+"/subscribers="+strconv.Itoa(subs), func(b *testing.B) {
				benchRedisCPU(b, mode, subs)
			})
		}
	}
}

func benchRedisCPU(b *testing.B, mode string, subs int) {
	var (
		nodes   []*redis.Client // every node, for INFO cpu
		subAddr string          // where the subscribers connect
		publish func(ctx context.Context, c redis.UniversalClient, payload string) error
		pubs    []redis.UniversalClient
		channel = "user:42"
	)
	switch mode {
	case "single":
		srv := testenv.StartRedis(b)
		nodes = []*redis.Client{srv.Client()}
		subAddr = srv.Addr()
		for range 4 {
			pubs = append(pubs, srv.Client())
		}
	case "sharded":
		srv, _ := testenv.StartOneNodeCluster(b)
		nodes = []*redis.Client{srv.Client()}
		subAddr = srv.Addr()
		channel = "user:{42}"
		for range 4 {
			pubs = append(pubs, srv.Client())
		}
	case "cluster3":
		rc := testenv.StartRedisCluster(b, 3, 0)
		for _, n := range rc.Nodes {
			nodes = append(nodes, n.Client())
		}
		subAddr = rc.Nodes[0].Addr()
		for range 4 {
			pubs = append(pubs, rc.Client())
		}
	}
	publish = func(ctx context.Context, c redis.UniversalClient, payload string) error {
		if mode == "sharded" {
			return c.SPublish(ctx, channel, payload).Err()
		}
		return c.Publish(ctx, channel, payload).Err()
	}
	ctx := context.Background()

	var received atomic.Int64
	for range subs {
		var readers sync.WaitGroup
		c := redis.NewClient(&redis.Options{Addr: subAddr})
		var ps *redis.PubSub
		if mode == "sharded" {
			ps = c.SSubscribe(ctx, channel)
		} else {
			ps = c.Subscribe(ctx, channel)
		}
		if _, err := ps.Receive(ctx); err != nil { // the confirmation
			b.Fatal(err)
		}
		readers.Go(func() {
			for {
				if _, err := ps.ReceiveMessage(ctx); err != nil {
					return
				}
				received.Add(1)
			}
		})
		b.Cleanup(func() { _ = ps.Close(); readers.Wait(); _ = c.Close() })
	}
	for _, p := range pubs { // connect before measuring
		if err := p.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	payload := `{"type":"friend_request","id":"5f0c1b8e-0d7e-4a57-9c43-3f4c1d2f9a10","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`

	before := cpuSeconds(b, nodes)
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := publish(ctx, p, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := int64(b.N * subs)
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	if got := received.Load(); got < want {
		b.Fatalf("subscribers received %d of %d messages", got, want)
	}
	cpu := cpuSeconds(b, nodes) - before
	b.ReportMetric(cpu*1e6/float64(b.N), "redis-µs/publish")
}

// cpuSeconds sums used_cpu_user and used_cpu_sys over nodes.
func cpuSeconds(b *testing.B, nodes []*redis.Client) float64 {
	b.Helper()
	var sum float64
	for _, n := range nodes {
		info, err := n.Info(context.Background(), "cpu").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
				f, _ := strconv.ParseFloat(v, 64)
				sum += f
			}
		}
	}
	return sum
}
