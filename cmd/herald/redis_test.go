package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
)

func TestRedisModes(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		cluster string
		check   func(t *testing.T, c redis.UniversalClient)
		wantErr string
	}{
		{name: "single", url: "redis://:pw@127.0.0.1:6379/2", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Addr != "127.0.0.1:6379" || o.Password != "pw" || o.DB != 2 {
				t.Fatalf("options = %s %q %d", o.Addr, o.Password, o.DB)
			}
		}},
		{name: "sentinel", url: "redis-sentinel://:p%40ss@h1:26379,h2:26379/mymaster/3?sentinel_password=sp", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.Password != "p@ss" || o.DB != 3 || !strings.HasPrefix(o.Addr, "FailoverClient") {
				t.Fatalf("options = %q %q %d", o.Addr, o.Password, o.DB)
			}
		}},
		{name: "cluster list", cluster: "h1:7000, h2:7001", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.ClusterClient).Options()
			if strings.Join(o.Addrs, ",") != "h1:7000,h2:7001" || o.Password != "" {
				t.Fatalf("options = %v %q", o.Addrs, o.Password)
			}
		}},
		{name: "cluster url", cluster: "rediss://:secret@h1:7000,h2:7001", check: func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.ClusterClient).Options()
			if len(o.Addrs) != 2 || o.Password != "secret" || o.TLSConfig == nil {
				t.Fatalf("options = %v %q tls=%v", o.Addrs, o.Password, o.TLSConfig != nil)
			}
		}},
		{name: "both", url: "redis://h:1/0", cluster: "h:2", wantErr: "both set"},
		{name: "sentinel without master", url: "redis-sentinel://h1:26379", wantErr: "master name"},
		{name: "sentinel bad host", url: "redis-sentinel://h1/m", wantErr: "host:port"},
		{name: "sentinel unknown parameter", url: "redis-sentinel://h1:1/m?db=2", wantErr: "unknown parameter"},
		{name: "cluster db", cluster: "redis://h1:7000/1", wantErr: "database 0"},
		{name: "cluster empty", cluster: ",", wantErr: "no host"},
		{name: "cluster scheme", cluster: "http://h1:7000", wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newRedisClient(&options{RedisURL: tt.url, RedisCluster: tt.cluster})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.check(t, c)
			if m := redisMode(&options{RedisURL: tt.url, RedisCluster: tt.cluster}); strings.Contains(m, "pw") || strings.Contains(m, "secret") || strings.Contains(m, "p%40ss") {
				t.Fatalf("redisMode leaks the password: %q", m)
			}
		})
	}
}

// TestRedisOptionsNoBlindRetry runs the jti store and a Publisher on the
// client options herald builds, through a proxy that drops the connection
// right after Redis ran the command: a fresh jti must never be reported as
// used, and a PUBLISH must not reach subscribers twice.
func TestRedisOptionsNoBlindRetry(t *testing.T) {
	rd := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, rd.Addr())
	ropts, err := redisOptions("redis://" + proxy.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(ropts)
	defer client.Close()
	ctx := context.Background()

	t.Run("jti", func(t *testing.T) {
		store, err := replay.NewRedis(client, replay.RedisConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		for i := range 5 {
			jti := uuid.NewString()
			proxy.DropAfterForward([]byte(jti), 1)
			first, err := store.Consume(ctx, jti, time.Now().Add(5*time.Second), time.Now().Add(30*time.Second))
			if err == nil && !first {
				t.Fatalf("try %d: the first Consume of a fresh jti answered \"already used\"", i)
			}
			if err != nil && !errors.Is(err, replay.ErrUnavailable) {
				t.Fatalf("try %d: got %v, want nil or ErrUnavailable", i, err)
			}
			if n := rd.Client().Exists(ctx, "jti:"+jti).Val(); n != 1 {
				t.Fatalf("try %d: the key was not set (the proxy did not forward)", i)
			}
			// Whatever the first answer, the jti is now used for good.
			if again, err := store.Consume(ctx, jti, time.Now().Add(5*time.Second), time.Now().Add(30*time.Second)); err != nil || again {
				t.Fatalf("try %d: second Consume: got %v, %v; want false, nil", i, again, err)
			}
		}
		if proxy.Dropped() == 0 {
			t.Fatal("the proxy dropped nothing")
		}
	})

	t.Run("publish", func(t *testing.T) {
		sub := rd.Client().Subscribe(ctx, "user:7")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		// A plain PUBLISH, on herald's own client options (the inbox path
		// is covered by fanout's TestPublisherNoRetry).
		pub, err := publish.NewPublisher(client, publish.PublisherConfig{NoInbox: true})
		if err != nil {
			t.Fatal(err)
		}
		before := proxy.Dropped()
		proxy.DropAfterForward([]byte("once"), 1)
		_, _ = pub.SendToUser(ctx, "7", []byte(`{"type":"once"}`))
		if proxy.Dropped() == before {
			t.Fatal("the proxy dropped nothing")
		}
		// Redis answers in order: the end marker arrives after every copy.
		if err := rd.Client().Publish(ctx, "user:7", "end").Err(); err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := sub.ReceiveMessage(rctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if m.Payload == "end" {
				break
			}
			got++
		}
		if got != 1 {
			t.Errorf("the PUBLISH reached the subscriber %d times, want 1", got)
		}
	})
}

// TestRedisURLRedacted: a --redis-url that does not parse must not print
// its password, whether it came from a flag or the environment.
func TestRedisURLRedacted(t *testing.T) {
	const bad = "redis://:hunter2@127.0.0.1:port/0"
	secrets := map[string]string{
		"HERALD_SESSION_SECRET":   "session-secret-for-tests-0123456789abcdef",
		"HERALD_WS_TOKEN_SECRET":  "ws-token-secret-for-tests-0123456789abcdef",
		"HERALD_SHUTDOWN_TIMEOUT": "1s",
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"--addr", "127.0.0.1:0", "--redis-url", bad}, nil},
		{"environment", []string{"--addr", "127.0.0.1:0"}, map[string]string{"HERALD_REDIS_URL": bad}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if v, ok := tc.env[k]; ok {
					return v
				}
				return secrets[k]
			}
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, tc.args, getenv, &stdout, &stderr)
			if err == nil {
				t.Fatal("run accepted a URL with a bad port")
			}
			for what, text := range map[string]string{"error": err.Error(), "stdout": stdout.String(), "stderr": stderr.String()} {
				if strings.Contains(text, "hunter2") {
					t.Errorf("%s shows the password: %s", what, text)
				}
			}
			if !strings.Contains(err.Error(), "redis-url") {
				t.Errorf("error %q does not name the setting", err)
			}
		})
	}
}
