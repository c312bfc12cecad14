package replay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func TestNewRedisDefaults(t *testing.T) {
	testenv.NoLeaks(t)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name        string
		cfg         RedisConfig
		wantPrefix  string
		wantTimeout time.Duration
	}{
		{"zero", RedisConfig{}, "jti:", 500 * time.Millisecond},
		{"negative timeout", RedisConfig{Timeout: -time.Second}, "jti:", 500 * time.Millisecond},
		{"set", RedisConfig{Prefix: "herald:", Timeout: 2 * time.Second}, "herald:jti:", 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRedis(NewRedis(client, tc.cfg))
			if r.prefix != tc.wantPrefix || r.timeout != tc.wantTimeout {
				t.Errorf("got prefix %q timeout %v, want %q %v", r.prefix, r.timeout, tc.wantPrefix, tc.wantTimeout)
			}
		})
	}
}

func TestRedisKeyLayout(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	client := rd.Client()
	ctx := context.Background()
	const ttl = 30 * time.Second

	tests := []struct {
		name   string
		prefix string
	}{
		{"no prefix", ""},
		{"prefix", "herald:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustRedis(NewRedis(client, RedisConfig{Prefix: tc.prefix}))
			defer s.Close()
			jti := newJTI()
			if got := mustConsume(t, s, jti, ttl); !got {
				t.Fatalf("got first=false, want true")
			}
			key := tc.prefix + "jti:" + jti

			val, err := client.Get(ctx, key).Result()
			if err != nil {
				t.Fatalf("GET %s: %v", key, err)
			}
			if val == "" {
				t.Errorf("GET %s: got an empty value, want the consumer's nonce", key)
			}
			pttl, err := client.PTTL(ctx, key).Result()
			if err != nil {
				t.Fatalf("PTTL %s: %v", key, err)
			}
			if pttl <= ttl-5*time.Second || pttl > ttl {
				t.Errorf("PTTL %s: got %v, want in (%v, %v]", key, pttl, ttl-5*time.Second, ttl)
			}
			// Nothing else was written.
			keys, err := client.Keys(ctx, "*"+jti+"*").Result()
			if err != nil {
				t.Fatalf("KEYS: %v", err)
			}
			if len(keys) != 1 || keys[0] != key {
				t.Errorf("keys holding the jti: got %q, want [%q]", keys, key)
			}
			// The epoch key: the server's start, with no expiry.
			epoch := tc.prefix + "jti-epoch"
			if pttl, err := client.PTTL(ctx, epoch).Result(); err != nil || pttl != -1 {
				t.Errorf("PTTL %s: got %v %v, want -1 (no expiry)", epoch, pttl, err)
			}
			start, err := client.Get(ctx, epoch).Int64()
			if up := time.Since(time.UnixMilli(start)); err != nil || up < 0 || up > time.Minute {
				t.Errorf("GET %s: %d %v, want the server's start (a few seconds ago)", epoch, start, err)
			}
		})
	}
}

// TestRedisNoInfoPerCall: the consume script reads INFO once per server
// start (to set the epoch key), not once per call.
func TestRedisNoInfoPerCall(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	rd.WaitUptime()
	client := rd.Client()
	s := mustRedis(NewRedis(client, RedisConfig{Timeout: 2 * time.Second}))
	defer s.Close()
	if err := client.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if !mustConsume(t, s, newJTI(), time.Minute) {
			t.Fatal("a fresh jti was reported used")
		}
	}
	stats, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(stats, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_info:calls="); ok {
			calls, _, _ := strings.Cut(rest, ",")
			if calls != "1" {
				t.Errorf("INFO ran %s times for 50 consumptions, want once", calls)
			}
			return
		}
	}
	t.Error("no cmdstat_info in INFO commandstats: INFO never ran, the epoch was not set from the server's start")
}

func TestRedisUnavailable(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	s := mustRedis(NewRedis(rd.Client(), RedisConfig{Timeout: 500 * time.Millisecond}))
	defer s.Close()

	if got := mustConsume(t, s, newJTI(), time.Minute); !got {
		t.Fatalf("before the kill: got first=false, want true")
	}

	rd.Kill()
	// The generous deadline only keeps a hang from stalling the test run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := s.Consume(ctx, newJTI(), time.Now().Add(time.Second), time.Now().Add(time.Minute))
	if first || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("server killed: got (%v, %v), want (false, an error wrapping ErrUnavailable)", first, err)
	}
	checkCauseVisible(t, err)
	if ctx.Err() != nil {
		t.Fatalf("Consume returned only after the test's own deadline: %v", err)
	}

	rd.Start()
	testenv.Eventually(t, 10*time.Second, func() error {
		first, err := s.Consume(context.Background(), newJTI(), time.Now().Add(time.Second), time.Now().Add(time.Minute))
		if err != nil || !first {
			return fmt.Errorf("after restart: got (%v, %v), want (true, nil)", first, err)
		}
		return nil
	})
}

func TestRedisCancelledContext(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	s := mustRedis(NewRedis(rd.Client(), RedisConfig{}))
	defer s.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first, err := s.Consume(ctx, newJTI(), time.Now().Add(time.Second), time.Now().Add(time.Minute))
	if first || !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got (%v, %v), want (false, an error wrapping ErrUnavailable and context.Canceled)", first, err)
	}
}

// TestRedisTimeout points the store at a server that accepts connections and
// never answers: Consume must give up after Timeout.
func TestRedisTimeout(t *testing.T) {
	testenv.NoLeaks(t)
	addr := silentServer(t)
	client := redis.NewClient(&redis.Options{
		Addr:                  addr,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true, // let the per-call deadline reach the socket
		ReadTimeout:           time.Minute,
		WriteTimeout:          time.Minute,
	})
	defer client.Close()
	s := mustRedis(NewRedis(client, RedisConfig{Timeout: 100 * time.Millisecond}))
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := s.Consume(ctx, newJTI(), time.Now().Add(time.Second), time.Now().Add(time.Minute))
	if first || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got (%v, %v), want (false, an error wrapping ErrUnavailable)", first, err)
	}
	checkCauseVisible(t, err)
	if ctx.Err() != nil {
		t.Fatalf("Consume returned only after the test's own deadline: %v", err)
	}
}

// checkCauseVisible fails unless err says more than ErrUnavailable does.
func checkCauseVisible(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, ErrUnavailable.Error()+": ") || len(msg) <= len(ErrUnavailable.Error())+2 {
		t.Errorf("error %q does not name a cause after %q", msg, ErrUnavailable)
	}
	causes, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %q (%T) does not wrap a cause beside ErrUnavailable", msg, err)
	}
	for _, c := range causes.Unwrap() {
		if c != ErrUnavailable {
			return
		}
	}
	t.Errorf("error %q wraps nothing but ErrUnavailable", msg)
}

// silentServer listens on loopback, accepts connections and never writes to
// them. Everything is closed when the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn // guarded by mu
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// mustRedis returns r, or panics with err.
func mustRedis(r *Redis, err error) *Redis {
	if err != nil {
		panic(err)
	}
	return r
}

func TestNewRedisNilClient(t *testing.T) {
	if _, err := NewRedis(nil, RedisConfig{}); !errors.Is(err, ErrNilClient) {
		t.Fatalf("NewRedis(nil) = %v, want ErrNilClient", err)
	}
}

// TestRedisLostAnswer drops the connection after Redis ran the script, with
// a client that allows retries (the go-redis default): go-redis must not
// retry on its own, and Consume's own retry, with the same nonce, must
// recognise its write and report the first use.
func TestRedisLostAnswer(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, rd.Addr())
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	defer client.Close()
	s := mustRedis(NewRedis(client, RedisConfig{Timeout: 5 * time.Second}))
	defer s.Close()
	for i := range 5 {
		jti := newJTI()
		proxy.DropAfterForward([]byte(jti), 1)
		first, err := s.Consume(context.Background(), jti, time.Now().Add(time.Second), time.Now().Add(time.Minute))
		if err != nil || !first {
			t.Fatalf("try %d: got (%v, %v), want (true, nil)", i, first, err)
		}
		if again := mustConsume(t, s, jti, time.Minute); again {
			t.Fatalf("try %d: second Consume: got first=true", i)
		}
	}
	if got := proxy.Dropped(); got != 5 {
		t.Errorf("the proxy dropped %d answers, want 5", got)
	}
}

// TestRedisRestartLosesNoUse: Redis restarted without its data (a crash,
// no persistence) must not make a consumed jti usable again. Redis knows its
// start to the second only, so the restart is tried at several points of a
// second, and the jti is tried again until past the next second boundary.
func TestRedisRestartLosesNoUse(t *testing.T) {
	testenv.NoLeaks(t)
	// The same for a token consumed in a caller's script (ConsumeIn), as
	// the handshake's inbox read does.
	inScript := NewScript(ConsumeLua + `
local code = herald_consume(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], redis.call('TIME'))
if type(code) == 'table' then return code end
return {code, 'rest'}
`)
	for name, consume := range map[string]func(s *Redis, jti string, mintedBy, expires time.Time) (bool, error){
		"Consume": func(s *Redis, jti string, mintedBy, expires time.Time) (bool, error) {
			return s.Consume(context.Background(), jti, mintedBy, expires)
		},
		"ConsumeIn": func(s *Redis, jti string, mintedBy, expires time.Time) (bool, error) {
			first, rest, err := s.ConsumeIn(context.Background(), inScript, Use{JTI: jti, User: "42", MintedBy: mintedBy, Expires: expires}, nil, nil)
			if first && (len(rest) != 1 || rest[0] != "rest") {
				return false, fmt.Errorf("ConsumeIn's rest = %v, want [rest]", rest)
			}
			return first, err
		},
	} {
		t.Run(name, func(t *testing.T) { restartLosesNoUse(t, consume) })
	}
}

func restartLosesNoUse(t *testing.T, consume func(s *Redis, jti string, mintedBy, expires time.Time) (bool, error)) {
	rd := testenv.StartRedis(t)
	s := mustRedis(NewRedis(rd.Client(), RedisConfig{Timeout: 2 * time.Second}))
	defer s.Close()
	for _, phase := range []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond} {
		now := time.Now()
		at := now.Truncate(time.Second).Add(phase) // the next time the clock is at phase
		if at.Before(now) {
			at = at.Add(time.Second)
		}
		time.Sleep(at.Sub(now))
		jti := newJTI()
		mintedBy, expires := time.Now(), time.Now().Add(time.Minute)
		if first, err := consume(s, jti, mintedBy, expires); err != nil || !first {
			t.Fatalf("phase %v: first use: got (%v, %v)", phase, first, err)
		}
		if again, err := consume(s, jti, mintedBy, expires); err != nil || again {
			t.Fatalf("phase %v: second use before the restart: got (%v, %v), want (false, nil)", phase, again, err)
		}
		rd.Kill()
		rd.Start()
		// Never accepted again: refused as expired (minted before the
		// start) or as unavailable (minted within the start's second),
		// tried until Redis answered once its start's second was over.
		boundary := time.Now().Truncate(time.Second).Add(time.Second)
		answered := 0
		testenv.Eventually(t, 30*time.Second, func() error {
			tried := time.Now()
			first, err := consume(s, jti, mintedBy, expires)
			if first {
				t.Fatalf("phase %v: the jti was accepted again after Redis lost its data", phase)
			}
			if errors.Is(err, ErrExpired) || errors.Is(err, errJustStarted) {
				answered++
				if tried.After(boundary) {
					return nil
				}
			}
			return fmt.Errorf("%d answers, none after the second boundary (last: %v)", answered, err)
		})
	}
}

// TestRedisConsumeOutlivesOneStall: a Redis (or a machine) that stalls for
// longer than the store's timeout, once, does not cost a handshake its
// token: a timed-out consume is sent again, with the same nonce, under a
// bound of its own. A Redis that stays silent still fails within two
// bounds (TestRedisTimeout).
func TestRedisConsumeOutlivesOneStall(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: rd.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
	defer client.Close()
	const bound = 2 * time.Second
	s := mustRedis(NewRedis(client, RedisConfig{Timeout: bound}))
	defer s.Close()
	mustConsume(t, s, newJTI(), time.Minute) // connected, the script loaded

	jti := newJTI()
	rd.Pause()
	stalled := time.Now()
	type result struct {
		first bool
		err   error
	}
	done := make(chan result, 1)
	go func() {
		first, err := s.Consume(context.Background(), jti, time.Now().Add(time.Second), time.Now().Add(time.Minute))
		done <- result{first, err}
	}()
	// The stall outlasts the first attempt's bound, by a fifth of it: the
	// second attempt then has four fifths of its own left once Redis is back.
	time.Sleep(bound + bound/5)
	rd.Resume()
	r := <-done
	if r.err != nil || !r.first {
		t.Fatalf("after a %v stall with a %v bound: got (%v, %v), want (true, nil)", time.Since(stalled).Round(time.Millisecond), bound, r.first, r.err)
	}
	if again := mustConsume(t, s, jti, time.Minute); again {
		t.Fatal("the token was spent twice")
	}
}
