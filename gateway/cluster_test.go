package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout/publish"
	fanoutredis "github.com/herald-gw/herald/fanout/redis"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
)

// startReplica starts a gateway on Redis r, as one replica of a cluster;
// authMod, if given, changes its auth configuration.
func startReplica(t *testing.T, r *testenv.Redis, node string, mod func(*gateway.Config), authMod ...func(*auth.Config)) *harness {
	t.Helper()
	client := redis.NewClient(&redis.Options{
		Addr: r.Addr(), MaxRetries: 0, ContextTimeoutEnabled: true,
		DialTimeout: 500 * time.Millisecond,
		PoolSize:    8, // small, so the churn test's warm-up fills it
	})
	t.Cleanup(func() { client.Close() })
	b, err := fanoutredis.New(client, fanoutredis.Config{
		NodeID:           node,
		UnsubscribeGrace: 50 * time.Millisecond,
		HealthInterval:   500 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var am func(*auth.Config)
	if len(authMod) > 0 {
		am = authMod[0]
	}
	h := start(t, harnessOpts{
		// A generous timeout: the churn test queues 32 handshakes on a pool of
		// 8 connections, and a loaded CI machine under -race is slow.
		auth:   am,
		store:  must(replay.NewRedis(client, replay.RedisConfig{Timeout: 2 * time.Second})),
		broker: b,
		gw: func(c *gateway.Config) {
			c.NodeID = node
			if mod != nil {
				mod(c)
			}
		},
	})
	testenv.Eventually(t, 5*time.Second, func() error {
		if !b.Ready() {
			return errors.New("broker not ready")
		}
		return nil
	})
	return h
}

func TestClusterTokenIsSingleUseAcrossReplicas(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	a := startReplica(t, r, "a", nil)
	b := startReplica(t, r, "b", nil)

	token := a.token("42")
	c, err := a.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if msg, err := c.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
		t.Fatalf("on A: %q %v", msg, err)
	}
	again, err := b.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	expectClose(t, again, 4003, "token_reused")

	// A token minted by A opens a socket on B.
	onB, err := b.dial(a.token("42"))
	if err != nil {
		t.Fatal(err)
	}
	defer onB.Close()
	if msg, err := onB.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, `"socket_id":"b.`) {
		t.Fatalf("A's token on B: %q %v, want a welcome from b", msg, err)
	}

	// 40 dials with one token, alternating replicas: one welcome.
	counts := raceOneToken(a.token("43"), []*harness{a, b})
	if counts["welcome"] != 1 || counts["token_reused"] != 39 {
		t.Fatalf("outcomes %v, want 1 welcome and 39 token_reused", counts)
	}
}

func TestClusterFanout(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	a := startReplica(t, r, "a", nil)
	b := startReplica(t, r, "b", nil)
	pub := must(publish.NewPublisher(r.Client(), publish.PublisherConfig{NoInbox: true}))
	ctx := context.Background()

	ua, wua := a.connect("u")
	ub, wub := b.connect("u")
	va, _ := a.connect("v")
	wb, _ := b.connect("w")
	// marker publishes msg to one user through the same path as the message
	// before it, after which that user must get nothing else.
	markUser := func(user, msg string) {
		t.Helper()
		if _, err := pub.SendToUser(ctx, user, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}

	if n, err := pub.SendToUser(ctx, "u", []byte(`{"type":"friend_request"}`)); err != nil || n != 2 {
		t.Fatalf("PUBLISH user:u reached %d replicas (%v), want 2", n, err)
	}
	expectText(t, ua, `{"type":"friend_request"}`, "u on a")
	expectText(t, ub, `{"type":"friend_request"}`, "u on b")
	markUser("v", "marker 1")
	markUser("w", "marker 1")
	expectNothingBefore(t, va, "marker 1", "v on a")
	expectNothingBefore(t, wb, "marker 1", "w on b")

	if _, err := pub.SendToSocket(ctx, wub.SocketID, []byte("one socket")); err != nil {
		t.Fatal(err)
	}
	expectText(t, ub, "one socket", "u on b")
	if _, err := pub.SendToSocket(ctx, wua.SocketID, []byte("marker 2")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, ua, "marker 2", "u on a")

	if _, err := pub.Broadcast(ctx, []byte("all")); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*testenv.WSClient{"ua": ua, "ub": ub, "va": va, "wb": wb} {
		expectText(t, c, "all", name)
	}

	// The in-process API of one replica reaches the other's sockets.
	if err := a.srv.BroadcastExcept(ctx, "u", []byte("not u")); err != nil {
		t.Fatal(err)
	}
	expectText(t, va, "not u", "v on a")
	expectText(t, wb, "not u", "w on b")
	if err := a.srv.BroadcastExcept(ctx, "v", []byte("marker 3")); err != nil {
		t.Fatal(err)
	}
	expectNothingBefore(t, ua, "marker 3", "u on a")
	expectNothingBefore(t, ub, "marker 3", "u on b")
	if err := b.srv.SendToUser(ctx, "v", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	expectText(t, va, "from b", "v on a")

	if _, err := pub.Disconnect(ctx, "u", "logout"); err != nil {
		t.Fatal(err)
	}
	expectClose(t, ua, 4000, "disconnected")
	expectClose(t, ub, 4000, "disconnected")
	markUser("v", "marker 4")
	expectNothingBefore(t, va, "marker 4", "v on a")
}

// numsub returns how many subscribers each channel has.
func numsub(t *testing.T, c *redis.Client, channels ...string) map[string]int64 {
	t.Helper()
	m, err := c.PubSubNumSub(context.Background(), channels...).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClusterSubscriptionsFollowSockets(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	rc := r.Client()
	a := startReplica(t, r, "a", nil)
	b := startReplica(t, r, "b", nil)
	c1, _ := a.connect("u")
	c2, _ := a.connect("u")
	c3, _ := b.connect("u")
	if got := numsub(t, rc, "user:u")["user:u"]; got != 2 {
		t.Fatalf("NUMSUB user:u = %d with sockets on 2 replicas, want 2", got)
	}
	c1.Close()
	c3.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := numsub(t, rc, "user:u")["user:u"]; got != 1 {
			return fmt.Errorf("NUMSUB user:u = %d, want 1 (a still holds a socket)", got)
		}
		return nil
	})
	c2.Close()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := numsub(t, rc, "user:u")["user:u"]; got != 0 {
			return fmt.Errorf("NUMSUB user:u = %d, want 0", got)
		}
		return nil
	})
}

func TestClusterRedisRestart(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	a := startReplica(t, r, "a", nil)
	b := startReplica(t, r, "b", nil)
	var clients []*testenv.WSClient
	for i := range 10 {
		h := a
		if i%2 == 1 {
			h = b
		}
		c, _ := h.connect(fmt.Sprintf("user%d", i%4))
		clients = append(clients, c)
	}
	token := a.token("late")

	r.Kill()
	for _, h := range []*harness{a, b} {
		testenv.Eventually(t, 5*time.Second, func() error {
			if code := getStatus(t, h.base+"/readyz"); code != 503 {
				return fmt.Errorf("/readyz = %d while Redis is down, want 503", code)
			}
			return nil
		})
	}
	// Handshakes fail closed while the jti store is unreachable.
	late, err := a.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	expectClose(t, late, 1013, "try_again_later")
	late.Close()
	if a.srv.Sockets()+b.srv.Sockets() != 10 {
		t.Fatalf("sockets = %d + %d, want all 10 to stay up while Redis is down", a.srv.Sockets(), b.srv.Sockets())
	}

	r.Start()
	for i, c := range clients {
		expectText(t, c, `{"type":"resync"}`, fmt.Sprintf("socket %d", i))
	}
	for _, h := range []*harness{a, b} {
		testenv.Eventually(t, 5*time.Second, func() error {
			if code := getStatus(t, h.base+"/readyz"); code != 200 {
				return fmt.Errorf("/readyz = %d after Redis came back, want 200", code)
			}
			return nil
		})
	}
	pub := must(publish.NewPublisher(r.Client(), publish.PublisherConfig{NoInbox: true}))
	for u := range 4 {
		if _, err := pub.SendToUser(context.Background(), fmt.Sprintf("user%d", u), []byte("after restart")); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range clients {
		expectText(t, c, "after restart", fmt.Sprintf("socket %d", i))
	}
}

func getStatus(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClusterChurnLeavesNothing connects and disconnects 1,000 users in a
// burst over two replicas and checks that no subscription, goroutine or
// file descriptor is left behind.
func TestClusterChurnLeavesNothing(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	rc := r.Client()
	replicas := []*harness{startReplica(t, r, "a", nil), startReplica(t, r, "b", nil)}
	// Warm up with the same concurrency, so that connection pools (the Redis
	// clients', the HTTP client's) reach their working size before the
	// baseline is taken.
	churn(t, replicas, "warm", 200)
	testenv.Eventually(t, 5*time.Second, func() error { return noUserChannels(t, rc) })
	http.DefaultClient.CloseIdleConnections()
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)

	churn(t, replicas, "churn", 1000)
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := replicas[0].srv.Sockets() + replicas[1].srv.Sockets(); n != 0 {
			return fmt.Errorf("%d sockets still registered", n)
		}
		return noUserChannels(t, rc)
	})
	http.DefaultClient.CloseIdleConnections()
	testenv.Eventually(t, 10*time.Second, func() error {
		g, fd := runtime.NumGoroutine(), openFDs(t)
		// A little slack for keep-alive connections the server has not
		// closed yet; a leak of the churn's sockets would be hundreds.
		if g > baseG+4 || fd > baseFD+4 {
			return fmt.Errorf("goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, fd, baseFD)
		}
		return nil
	})
}

func noUserChannels(t *testing.T, rc *redis.Client) error {
	chans, err := rc.PubSubChannels(context.Background(), "user:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) > 0 {
		return fmt.Errorf("%d user channels still subscribed, e.g. %s", len(chans), chans[0])
	}
	return nil
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// churn connects and disconnects n users, 32 at a time, alternating replicas.
func churn(t *testing.T, replicas []*harness, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, n)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				h := replicas[i%len(replicas)]
				c, err := h.dial(h.token(fmt.Sprintf("%s%d", prefix, i)))
				if err != nil {
					errs <- err
					continue
				}
				if msg, err := c.ReadText(10 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
					errs <- fmt.Errorf("user %d: %q %v", i, msg, err)
				}
				c.Close()
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
