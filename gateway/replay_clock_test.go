package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestReplayClockLag: a replica whose clock lags must not accept a token
// that another replica consumed, once the jti key has expired. Redis' clock
// decides whether the token is still alive, not the replica's.
func TestReplayClockLag(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	skew := func(c *auth.Config) { c.ClockSkew = 3 * time.Second }
	// The minter's tokens live 1 s.
	minter := start(t, harnessOpts{auth: func(c *auth.Config) { c.WSTokenTTL = time.Second }})
	a := startReplica(t, r, "a", nil, skew)
	// A lag within the skew: a larger one makes it refuse every token
	// minted elsewhere as issued in the future.
	lagging := startReplica(t, r, "lag", nil, func(c *auth.Config) {
		skew(c)
		c.Now = func() time.Time { return time.Now().Add(-2900 * time.Millisecond) }
	})

	token := minter.token("42")
	c, err := a.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if msg, err := c.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
		t.Fatalf("first use on A: %q %v", msg, err)
	}
	// Wait for the jti key to expire in Redis (the epoch key stays).
	rc := r.Client()
	testenv.Eventually(t, 10*time.Second, func() error {
		keys, err := rc.Keys(context.Background(), "jti:*").Result()
		if err != nil || len(keys) != 0 {
			return fmt.Errorf("jti keys left: %q (%v)", keys, err)
		}
		return nil
	})
	again, err := lagging.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	msg, err := again.ReadText(5 * time.Second)
	if err == nil {
		t.Fatalf("token accepted twice: the lagging replica answered %s", msg)
	}
	var cf *testenv.CloseFrame
	if !errors.As(err, &cf) || cf.Code != 4001 || cf.Reason != "token_expired" {
		t.Fatalf("got %v, want close 4001 token_expired", err)
	}
}
