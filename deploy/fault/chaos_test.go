//go:build chaos

package fault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chaosStats are the chaos test's counters, updated by the clients.
type chaosStats struct {
	connects, connectFails atomic.Int64
	received               atomic.Int64 // numbered messages received
	duplicates             atomic.Int64 // a number seen twice on one socket
	gaps                   atomic.Int64 // numbers skipped on one socket (lost while it lived)
	stalls                 atomic.Int64 // a live socket silent for stallAfter while publishing went on
	replaysTried           atomic.Int64
	replaysAccepted        atomic.Int64
}

const stallAfter = 3 * time.Second

// TestChaos bounces a random replica or Redis every few seconds under load
// for about a minute (HERALD_CHAOS_DURATION overrides it), with 30 clients
// reconnecting through nginx, a numbered broadcast every 50 ms and
// consumed tokens replayed all along. It reports stalls, duplicates, gaps
// and replays; zero replays accepted is the pass condition, and a
// duplicate on one socket fails it too (pub/sub is at most once).
//
//	go test -tags chaos -run TestChaos -v ./deploy/fault/
func TestChaos(t *testing.T) {
	duration := time.Minute
	if d, err := time.ParseDuration(os.Getenv("HERALD_CHAOS_DURATION")); err == nil && d > 0 && d <= 10*time.Minute {
		duration = d
	}
	const clients = 30
	c := startLBCluster(t)
	lb := c.lb.Addr
	var st chaosStats
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()

	var (
		usedMu sync.Mutex
		used   []string
	)
	// Publisher: a numbered broadcast every 50 ms; errors (Redis down)
	// skip a number, which clients then see as a gap.
	var published, pubFailed atomic.Int64
	wg.Go(func() {
		pub := c.rd.Client()
		for n := int64(1); ctx.Err() == nil && n < 1_000_000; n++ {
			pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			if pub.Publish(pctx, "broadcast", `{"type":"n","n":`+strconv.FormatInt(n, 10)+`}`).Err() != nil {
				pubFailed.Add(1) // Redis down: the number is never sent
			}
			cancel()
			published.Store(n)
			time.Sleep(50 * time.Millisecond)
		}
	})
	// Clients.
	for i := range clients {
		user := "c" + strconv.Itoa(i)
		wg.Go(func() {
			for ctx.Err() == nil {
				tok, err := token(t, lb, user)
				var s *sock
				if err == nil {
					s, err = dialWS(lb, tok)
				}
				if err != nil {
					st.connectFails.Add(1)
					time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
					continue
				}
				st.connects.Add(1)
				usedMu.Lock()
				used = append(used, tok)
				usedMu.Unlock()
				seen := map[int64]bool{}
				var last int64
				lastMsg := time.Now()
				for ctx.Err() == nil {
					msg, err := s.ReadText(500 * time.Millisecond)
					if err != nil && strings.Contains(err.Error(), "timeout") {
						if time.Since(lastMsg) > stallAfter {
							st.stalls.Add(1)
							lastMsg = time.Now()
						}
						continue
					}
					if err != nil {
						break // lost, drained or refused: reconnect
					}
					lastMsg = time.Now()
					v, ok := strings.CutPrefix(msg, `{"type":"n","n":`)
					if !ok {
						continue
					}
					n, _ := strconv.ParseInt(strings.TrimSuffix(v, "}"), 10, 64)
					st.received.Add(1)
					if seen[n] {
						st.duplicates.Add(1)
					}
					seen[n] = true
					if last != 0 && n > last+1 {
						st.gaps.Add(n - last - 1)
					}
					last = max(last, n)
				}
				s.Close()
			}
		})
	}
	// Replayer: one consumed token through nginx every 200 ms.
	wg.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			usedMu.Lock()
			var tok string
			if len(used) > 0 {
				tok = used[rand.IntN(len(used))]
			}
			usedMu.Unlock()
			if tok == "" {
				continue
			}
			st.replaysTried.Add(1)
			if s, err := dialWS(lb, tok); err == nil {
				st.replaysAccepted.Add(1)
				t.Errorf("token accepted twice, by %s", s.Node)
				s.Close()
			}
		}
	})

	// Chaos: every 3 s, SIGKILL a random replica or Redis (at least every
	// fourth action), restart it 1 s later.
	end := time.Now().Add(duration)
	var actions []string
	for time.Now().Before(end) && len(actions) < 100 {
		time.Sleep(2 * time.Second)
		victim := rand.IntN(len(c.nodes) + 1)
		if len(actions)%4 == 1 {
			victim = len(c.nodes) // Redis at least every fourth time
		}
		if victim == len(c.nodes) {
			actions = append(actions, "redis")
			c.rd.Kill()
			time.Sleep(time.Second)
			c.rd.Start()
		} else {
			n := c.nodes[victim]
			actions = append(actions, n)
			c.kill(n)
			time.Sleep(time.Second)
			c.start(n)
		}
	}
	time.Sleep(3 * time.Second) // let clients settle
	stop()
	wg.Wait()

	figure(t, "chaos_actions", fmt.Sprintf("%d in %v: %s", len(actions), duration, strings.Join(actions, " ")))
	figure(t, "chaos_clients", fmt.Sprintf("%d clients, %d connects, %d failed attempts", clients, st.connects.Load(), st.connectFails.Load()))
	figure(t, "chaos_messages", fmt.Sprintf("%d numbers, %d not published (Redis down), %d received, %d duplicates, %d skipped on a live socket (gaps), %d stalls > %v",
		published.Load(), pubFailed.Load(), st.received.Load(), st.duplicates.Load(), st.gaps.Load(), st.stalls.Load(), stallAfter))
	figure(t, "chaos_replays", fmt.Sprintf("%d tried, %d accepted", st.replaysTried.Load(), st.replaysAccepted.Load()))
	if st.replaysAccepted.Load() != 0 {
		t.Errorf("%d replays accepted", st.replaysAccepted.Load())
	}
	if st.duplicates.Load() != 0 {
		t.Errorf("%d messages delivered twice on one socket", st.duplicates.Load())
	}
	if st.replaysTried.Load() == 0 || st.received.Load() == 0 {
		t.Error("the chaos test exercised nothing")
	}
}
