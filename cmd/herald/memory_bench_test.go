package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// BenchmarkSocketMemory measures what docs/CAPACITY.md sizes replicas with:
// the resident memory (VmRSS) of a herald process per open, idle socket,
// each of a distinct user (so the per-user registry and, with Redis, the
// user subscription are counted too). It opens 4,000 sockets to one
// herald on the embedded broker, then to one on Redis, and reports KiB per
// socket from the RSS growth. Run without -race (the detector's shadow
// memory would count):
//
//	go test -run '^$' -bench BenchmarkSocketMemory -benchtime 1x ./cmd/herald/
func BenchmarkSocketMemory(b *testing.B) {
	const sockets = 4000
	for _, mode := range []string{"embedded", "redis"} {
		b.Run(mode, func(b *testing.B) {
			env := []string{"HERALD_STANDALONE=true"}
			if mode == "redis" {
				env = []string{"HERALD_REDIS_URL=" + testenv.StartRedis(b).URL()}
			}
			f := startBenchFleet(b, env)
			h := f.heralds[0]
			time.Sleep(500 * time.Millisecond) // let start-up allocations settle
			before := rssKiB(b, h.Pid())
			var clients []*testenv.WSClient
			defer func() {
				for _, c := range clients {
					c.Close()
				}
			}()
			for i := range sockets {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				ws, err := testenv.DialWS(ctx, "ws://"+h.Addr+"/ws?token="+url.QueryEscape(f.token(0, "m"+strconv.Itoa(i))), nil)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if msg, err := ws.ReadText(10 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
					b.Fatalf("socket %d: %q %v", i, msg, err)
				}
				clients = append(clients, ws)
			}
			time.Sleep(500 * time.Millisecond)
			after := rssKiB(b, h.Pid())
			b.ReportMetric(float64(after-before)/sockets, "KiB/socket")
			b.ReportMetric(float64(after)/1024, "MiB-rss")
		})
	}
}

// startBenchFleet is startFleet for a benchmark: one replica.
func startBenchFleet(b *testing.B, env []string) *fleet {
	f := &fleet{t: b, session: []byte(strings.Repeat("k", 32)), client: &http.Client{Timeout: 10 * time.Second}}
	b.Cleanup(f.client.CloseIdleConnections)
	addr := testenv.FreeAddr(b)
	e := append([]string{
		"HERALD_ADDR=" + addr,
		"HERALD_WS_TOKEN_SECRET=" + strings.Repeat("w", 32),
		"HERALD_SESSION_SECRET=" + string(f.session),
		"HERALD_LOG_LEVEL=warn",
	}, env...)
	f.heralds = append(f.heralds, testenv.StartHerald(b, heraldBin, addr, e))
	return f
}

// rssKiB reads VmRSS of pid.
func rssKiB(b *testing.B, pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
