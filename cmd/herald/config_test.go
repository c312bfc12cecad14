package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseOptions(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("from-a-file-0123456789abcdef0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, o *options)
		wantErr string
	}{
		{"defaults", nil, nil, func(t *testing.T, o *options) {
			if !o.Inbox || o.InboxMaxLen != 100 || o.InboxRetention != 24*time.Hour {
				t.Errorf("inbox defaults = %v, %d, %s", o.Inbox, o.InboxMaxLen, o.InboxRetention)
			}
			if o.Addr != ":8080" || o.SessionAlgs != "HS256" || o.SessionCookie != "access_token" || o.UserClaim != "sub" ||
				o.WSTokenTTL != 30*time.Second || o.PingInterval != 30*time.Second || o.IdleTimeout != 60*time.Second ||
				o.MaxMessageBytes != 4096 || o.MaxSocketsPerUser != 16 || o.LogLevel != "info" || o.LogFormat != "json" {
				t.Errorf("defaults = %+v", o)
			}
		}, ""},
		{"environment", nil, map[string]string{
			"HERALD_ADDR": "127.0.0.1:9000", "HERALD_REDIS_URL": "redis://r:6379/0", "HERALD_CHANNEL_PREFIX": "app:",
			"HERALD_PING_INTERVAL": "5s", "HERALD_MAX_SOCKETS_PER_USER": "4", "HERALD_ALLOWED_ORIGINS": "https://a.example",
		}, func(t *testing.T, o *options) {
			if o.Addr != "127.0.0.1:9000" || o.RedisURL != "redis://r:6379/0" || o.Prefix != "app:" ||
				o.PingInterval != 5*time.Second || o.MaxSocketsPerUser != 4 || o.AllowedOrigins != "https://a.example" {
				t.Errorf("from environment = %+v", o)
			}
		}, ""},
		{"flags win over environment", []string{"--ping-interval", "7s", "--addr=:9100"},
			map[string]string{"HERALD_PING_INTERVAL": "5s", "HERALD_ADDR": ":9000"}, func(t *testing.T, o *options) {
				if o.PingInterval != 7*time.Second || o.Addr != ":9100" {
					t.Errorf("ping %s addr %s, want the flags' 7s and :9100", o.PingInterval, o.Addr)
				}
			}, ""},
		{"secret from a file", nil, map[string]string{"HERALD_SESSION_SECRET_FILE": secretFile}, func(t *testing.T, o *options) {
			if o.SessionSecret != "from-a-file-0123456789abcdef0123456789" {
				t.Errorf("secret = %q, want the file's first line without its newline", o.SessionSecret)
			}
		}, ""},
		{"inbox", nil, map[string]string{"HERALD_INBOX": "false", "HERALD_INBOX_MAX_LEN": "20", "HERALD_INBOX_RETENTION": "1h"}, func(t *testing.T, o *options) {
			if o.Inbox || o.InboxMaxLen != 20 || o.InboxRetention != time.Hour {
				t.Errorf("inbox %v, max len %d, retention %s; want false, 20, 1h", o.Inbox, o.InboxMaxLen, o.InboxRetention)
			}
		}, ""},
		{"secret and secret file", nil, map[string]string{"HERALD_WS_TOKEN_SECRET_FILE": secretFile, "HERALD_WS_TOKEN_SECRET": "x"}, nil, "both set"},
		{"missing secret file", nil, map[string]string{"HERALD_SESSION_SECRET_FILE": "/nonexistent"}, nil, "HERALD_SESSION_SECRET_FILE"},
		{"bad duration in environment", nil, map[string]string{"HERALD_IDLE_TIMEOUT": "soon"}, nil, "HERALD_IDLE_TIMEOUT"},
		{"dev listens on loopback", []string{"--dev"}, nil, func(t *testing.T, o *options) {
			if o.Addr != "127.0.0.1:8080" {
				t.Errorf("dev addr = %s, want 127.0.0.1:8080", o.Addr)
			}
		}, ""},
		{"dev on all interfaces", []string{"--dev", "--addr", ":8080"}, nil, nil, "loopback"},
		{"dev on a public address", []string{"--dev"}, map[string]string{"HERALD_ADDR": "10.1.2.3:8080"}, nil, "loopback"},
		{"dev on ::1", []string{"--dev", "--addr", "[::1]:8080"}, nil, nil, ""},
		{"stray argument", []string{"serve"}, nil, nil, "unexpected arguments"},
		// A brace in the prefix would be the hash tag of every key on a
		// Redis Cluster (or split a user's keys over slots); a control
		// character or space cannot be typed into redis-cli safely.
		{"channel prefix with an opening brace", []string{"--channel-prefix", "app{"}, nil, nil, "--channel-prefix"},
		{"channel prefix with a closing brace", nil, map[string]string{"HERALD_CHANNEL_PREFIX": "a}:"}, nil, "--channel-prefix"},
		{"channel prefix with a hash tag", []string{"--channel-prefix", "{app}:"}, nil, nil, "--channel-prefix"},
		{"channel prefix with a space", []string{"--channel-prefix", "my app:"}, nil, nil, "--channel-prefix"},
		{"channel prefix with a newline", []string{"--channel-prefix", "app\n"}, nil, nil, "--channel-prefix"},
		{"channel prefix with glob characters", []string{"--channel-prefix", "app[1]*:"}, nil, nil, ""},
		{"auth blocking defaults", nil, nil, func(t *testing.T, o *options) {
			if o.AuthFailLimit != 30 || o.AuthFailWindow != time.Minute || o.AuthBlockDuration != 5*time.Minute {
				t.Errorf("auth blocking = %d per %s for %s, want 30 per 1m for 5m", o.AuthFailLimit, o.AuthFailWindow, o.AuthBlockDuration)
			}
		}, ""},
		{"auth blocking from environment", nil, map[string]string{
			"HERALD_AUTH_FAIL_LIMIT": "0", "HERALD_AUTH_FAIL_WINDOW": "10s", "HERALD_AUTH_BLOCK_DURATION": "1h",
		}, func(t *testing.T, o *options) {
			if o.AuthFailLimit != 0 || o.AuthFailWindow != 10*time.Second || o.AuthBlockDuration != time.Hour {
				t.Errorf("auth blocking = %d per %s for %s, want 0 per 10s for 1h", o.AuthFailLimit, o.AuthFailWindow, o.AuthBlockDuration)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

// TestEveryContractSettingIsAFlagAndAVariable pins the names of the
// contract's configuration table.
func TestEveryContractSettingIsAFlagAndAVariable(t *testing.T) {
	fs := newFlagSet(&options{}, io.Discard)
	for _, name := range []string{
		"addr", "redis-url", "channel-prefix", "session-secret", "session-public-key", "session-jwks",
		"session-algs", "session-cookie", "session-issuer", "session-audience", "user-claim",
		"ws-token-secret", "ws-token-ttl", "allowed-origins", "ping-interval", "idle-timeout",
		"max-message-bytes", "max-sockets-per-user", "log-level", "log-format",
		"session-secret-file", "ws-token-secret-file",
	} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
	if got := envName("max-sockets-per-user"); got != "HERALD_MAX_SOCKETS_PER_USER" {
		t.Errorf("envName = %s", got)
	}
	if got := envName("session-secret-file"); got != "HERALD_SESSION_SECRET_FILE" {
		t.Errorf("envName = %s", got)
	}
}

func TestPrefixes(t *testing.T) {
	got, err := prefixes("10.0.0.0/8, 127.0.0.1,::1")
	if err != nil || len(got) != 3 || got[1].String() != "127.0.0.1/32" || got[2].String() != "::1/128" {
		t.Fatalf("prefixes = %v, %v", got, err)
	}
	if _, err := prefixes("nginx"); err == nil {
		t.Fatal("a host name was accepted as a trusted proxy")
	}
}
