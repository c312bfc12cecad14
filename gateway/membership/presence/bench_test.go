package presence_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/internal/testenv"
)

// BenchmarkRedis measures presence's Redis work against a real
// redis-server with three live replicas: what a connect costs (one +1, the
// cap's synchronous round trip), what the batched queue costs per socket,
// a refresh, and a cluster-wide count. redis-server's CPU time per op is
// reported too ("redis-µs/op", from INFO commandstats).
func BenchmarkRedis(b *testing.B) {
	rdb := testenv.StartRedis(b).Client()
	ctx := context.Background()
	s, err := presence.NewRedis(rdb, presence.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.Refresh(ctx, n, 0); err != nil {
			b.Fatal(err)
		}
	}
	run := func(name string, perOp int, f func(i int) error) {
		b.Run(name, func(b *testing.B) {
			rdb.ConfigResetStat(ctx)
			for i := 0; b.Loop(); i++ {
				if err := f(i); err != nil {
					b.Fatal(err)
				}
			}
			info, _ := rdb.Info(ctx, "commandstats").Result()
			var usec float64
			for _, cmd := range []string{"evalsha", "eval"} {
				var calls, u int64
				if i := strings.Index(info, "cmdstat_"+cmd+":"); i >= 0 {
					fmt.Sscanf(info[i:], "cmdstat_"+cmd+":calls=%d,usec=%d", &calls, &u)
					usec += float64(u)
				}
			}
			b.ReportMetric(usec/float64(b.N*perOp), "redis-µs/op")
		})
	}
	run("connect (+1, synchronous: the cap)", 1, func(i int) error {
		_, err := s.Apply(ctx, "a", []presence.Op{{User: fmt.Sprint("u", i%5000), Delta: 1, Cap: 1 << 20}})
		return err
	})
	batch := make([]presence.Op, 512)
	run("queued +1/-1 per socket (batches of 512)", len(batch), func(i int) error {
		for j := range batch {
			batch[j] = presence.Op{User: fmt.Sprint("v", (i*len(batch)+j)%5000), Delta: 1 - 2*(j%2)}
		}
		_, err := s.Apply(ctx, "b", batch)
		return err
	})
	run("refresh", 1, func(int) error {
		_, err := s.Refresh(ctx, "c", 1000)
		return err
	})
	run("count", 1, func(i int) error {
		_, err := s.Count(ctx, fmt.Sprint("u", i%5000))
		return err
	})
}
