package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestURL(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:hunter2@127.0.0.1:6379/0", "redis://xxxxx@127.0.0.1:6379/0"},
		{"redis://user:hunter2@h:6379/0", "redis://xxxxx@h:6379/0"},
		{"rediss://user:hunter2@h:6379/0?dial_timeout=1s", "rediss://xxxxx@h:6379/0?dial_timeout=xxxxx"},
		{"https://keys.example.com/jwks?token=hunter2", "https://keys.example.com/jwks?token=xxxxx"},
		// Does not parse: the port is bad, the password has odd bytes.
		{"redis://:hunter2@127.0.0.1:port/0", "redis://xxxxx@127.0.0.1:port/0"},
		{"redis://:hun/ter@2@h:x/0", "redis://xxxxx@h:x/0"},
		{"redis://:hunter2@h:x/0?password=hunter2", "redis://xxxxx@h:x/0?xxxxx"},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			got := URL(tc.raw)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "hunter2") || strings.Contains(got, "ter@2") {
				t.Errorf("%q still holds the secret", got)
			}
		})
	}
}

func TestError(t *testing.T) {
	raw := "redis://:hunter2@127.0.0.1:port/0"
	_, perr := redis.ParseURL(raw)
	if perr == nil || !strings.Contains(perr.Error(), "hunter2") {
		t.Fatalf("ParseURL's error %v no longer quotes the password: the test proves nothing", perr)
	}
	sentinel := errors.New("boom")
	tests := []struct {
		name string
		err  error
	}{
		{"url.Error from ParseURL", perr},
		{"text quoting the URL", fmt.Errorf("dial %s: %w", raw, sentinel)},
		{"url.Error wrapped", fmt.Errorf("wrapped: %w", &url.Error{Op: "parse", URL: raw, Err: sentinel})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Error(tc.err, raw)
			if strings.Contains(got.Error(), "hunter2") {
				t.Errorf("%q still holds the password", got)
			}
			if got.Error() == "" {
				t.Error("empty message")
			}
		})
	}
	if got := Error(fmt.Errorf("dial %s: %w", raw, sentinel), raw); !errors.Is(got, sentinel) {
		t.Error("the cause is no longer wrapped")
	}
	if Error(nil, raw) != nil {
		t.Error("Error(nil) is not nil")
	}
}
