package fault_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// Bounds documented in docs/RELIABILITY.md. The health interval is the
// default of --redis-health-interval (2s): an unanswered PING is noticed
// when the next one is due, so Redis is known lost within 2 intervals.
const (
	healthInterval   = 2 * time.Second
	detectBound      = 2 * healthInterval
	handshakeTimeout = 2 * time.Second // HERALD_HANDSHAKE_TIMEOUT in nodeEnv
	slack            = 2 * time.Second // scheduling slack on a loaded 2-core machine
)

// waitStatus polls h's path until it answers want and returns how long it
// took.
func waitStatus(t *testing.T, h *testenv.Herald, path string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.Eventually(t, within, func() error {
		if got := h.Status(path); got != want {
			return fmt.Errorf("%s = %d, want %d", path, got, want)
		}
		return nil
	})
	return time.Since(start)
}

// checkFailsClosed opens a socket with a fresh token while Redis is away:
// it must be refused with 1013 within the handshake timeout, not hang.
func checkFailsClosed(t *testing.T, h *testenv.Herald) time.Duration {
	t.Helper()
	tok, err := token(t, h.Addr, "newcomer")
	if err != nil {
		t.Fatalf("the token endpoint needs no Redis, yet: %v", err)
	}
	start := time.Now()
	s, err := dialWS(h.Addr, tok)
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("a handshake was welcomed while Redis was away")
	}
	if code := closeCode(err); code != 1013 {
		t.Fatalf("handshake while Redis is away: got %v, want close 1013", err)
	}
	if took > handshakeTimeout+slack {
		t.Errorf("refusal took %v, want within the handshake timeout %v (+%v slack)", took, handshakeTimeout, slack)
	}
	return took
}

// checkAlive sends {"type":"ping"} on every socket and waits for the pong.
func checkAlive(t *testing.T, socks []*sock) {
	t.Helper()
	for _, s := range socks {
		if err := s.WriteText(`{"type":"ping"}`); err != nil {
			t.Fatalf("socket %s: write: %v", s.ID, err)
		}
		if _, err := readUntil(s, 5*time.Second, is(`{"type":"pong"}`)); err != nil {
			t.Fatalf("socket %s did not stay open: %v", s.ID, err)
		}
	}
}

// checkRecovered waits for {"type":"resync"} on every socket, then publishes
// one message per user and waits for it on every socket.
func checkRecovered(t *testing.T, rd *testenv.Redis, socks []*sock) {
	t.Helper()
	for _, s := range socks {
		if _, err := readUntil(s, 15*time.Second, is(`{"type":"resync"}`)); err != nil {
			t.Fatalf("socket %s: no resync after recovery: %v", s.ID, err)
		}
	}
	rc := rd.Client()
	for _, s := range socks {
		want := `{"type":"after","user":"` + s.User + `"}`
		if err := rc.Publish(context.Background(), "user:"+s.User, want).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := readUntil(s, 5*time.Second, is(want)); err != nil {
			t.Fatalf("socket %s: message published after recovery did not arrive: %v", s.ID, err)
		}
	}
}

// TestRedisPaused: Redis SIGSTOPped for 8 s (no RST, no FIN), then SIGCONT.
func TestRedisPaused(t *testing.T) {
	rd := testenv.StartRedis(t)
	h := startNode(t, rd, "paused")
	waitStatus(t, h, "/readyz", http.StatusOK, 10*time.Second)
	var socks []*sock
	for i := range 20 {
		socks = append(socks, mustConnect(t, h.Addr, "u"+strconv.Itoa(i)))
	}

	rd.Pause()
	paused := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			rd.Resume()
		}
	}()
	detect := waitStatus(t, h, "/readyz", http.StatusServiceUnavailable, detectBound+slack)
	figure(t, "redis_pause_detect", detect.Round(10*time.Millisecond))
	refuse := checkFailsClosed(t, h)
	figure(t, "redis_pause_handshake_refused_after", refuse.Round(10*time.Millisecond))
	checkAlive(t, socks)

	time.Sleep(time.Until(paused.Add(8 * time.Second))) // the outage itself: 8 s
	rd.Resume()
	resumed = true
	ready := waitStatus(t, h, "/readyz", http.StatusOK, 15*time.Second)
	figure(t, "redis_pause_ready_after_resume", ready.Round(10*time.Millisecond))
	checkRecovered(t, rd, socks)
	checkAlive(t, socks)
}

// TestRedisKilledUnderLoad: Redis SIGKILLed and restarted on the same port
// while messages fan out to every socket.
func TestRedisKilledUnderLoad(t *testing.T) {
	const users = 200
	rd := testenv.StartRedis(t)
	h := startNode(t, rd, "killed")
	waitStatus(t, h, "/readyz", http.StatusOK, 10*time.Second)
	var socks []*sock
	for i := range users {
		socks = append(socks, mustConnect(t, h.Addr, "u"+strconv.Itoa(i)))
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := metric(t, h, "herald_broker_subscriptions"); got < users {
			return fmt.Errorf("%v user channels confirmed, want %d", got, users)
		}
		return nil
	})

	// Fan-out load: a broadcast every 20 ms and a message to one user
	// every 2 ms, from a client of their own, errors ignored during the
	// outage.
	ctx, stop := context.WithCancel(context.Background())
	var load sync.WaitGroup
	defer func() { stop(); load.Wait() }()
	load.Go(func() {
		pub := rd.Client()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ctx.Err() == nil && i < 100_000; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if i%10 == 0 {
				pub.Publish(ctx, "broadcast", `{"type":"load"}`)
			} else {
				pub.Publish(ctx, "user:u"+strconv.Itoa(i%users), `{"type":"load"}`)
			}
		}
	})
	// The sockets are not read during the load: about 1 KB/s each, which
	// their kernel buffers absorb, far below --max-queue-bytes.
	time.Sleep(time.Second) // load before the kill

	if got := metric(t, h, "herald_messages_delivered_total"); got < users {
		t.Fatalf("only %v frames delivered before the kill: no load", got)
	}
	rd.Kill()
	detect := waitStatus(t, h, "/readyz", http.StatusServiceUnavailable, detectBound+slack)
	figure(t, "redis_kill_detect", detect.Round(10*time.Millisecond))
	checkFailsClosed(t, h)
	checkAlive(t, socks) // skips the load messages queued before the pong

	rd.Start()
	restarted := time.Now()
	testenv.Eventually(t, 20*time.Second, func() error {
		if got := metric(t, h, "herald_broker_subscriptions"); got < users {
			return fmt.Errorf("%v of %d user channels resubscribed", got, users)
		}
		return nil
	})
	figure(t, "redis_kill_resubscribe_200_channels", time.Since(restarted).Round(10*time.Millisecond))
	stop()
	load.Wait()
	checkRecovered(t, rd, socks)
	if got := metric(t, h, `herald_disconnects_total{code="4009"}`); got != 0 {
		t.Errorf("%v sockets shed as slow consumers under the load", got)
	}
}
