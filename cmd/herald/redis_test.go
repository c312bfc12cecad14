package main

import (
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
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
