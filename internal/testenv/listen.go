package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Listen subscribes a plain client to channels and returns a function that
// returns the next message, for checking the exact bytes on the wire.
func Listen(t testing.TB, c *redis.Client, channels ...string) func() *redis.Message {
	t.Helper()
	ctx := context.Background()
	ps := c.Subscribe(ctx, channels...)
	t.Cleanup(func() { ps.Close() })
	for range channels {
		if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
			t.Fatalf("subscribe %q: %v", channels, err)
		}
	}
	return func() *redis.Message {
		t.Helper()
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			t.Fatalf("received %T, want a message", msg)
		}
		return m
	}
}
