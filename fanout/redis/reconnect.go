package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// go-redis's PubSub redials and resubscribes every channel in one command
// when its connection breaks, from inside Receive, Ping or Subscribe. The
// Redis broker does that itself, in batches and with backoff, so it forbids
// those dials: it passes a context marked with noDialKey to every PubSub call
// except the ones that open the connection, and dialGuard, a hook on the
// client, refuses to dial for such a context. The PubSub then reports the
// broken connection to the broker instead of hiding it.

// noDialKey marks a context in which go-redis must not open a connection.
type noDialKey struct{}

// errDialRefused is what a PubSub's own reconnect attempt fails with.
var errDialRefused = errors.New("fanout: the broker reconnects its pub/sub connection itself")

// dialGuard is a redis.Hook that refuses dials in a noDialKey context,
// keeps the connection it dials for a captureKey context (receive.go), and
// leaves everything else alone.
type dialGuard struct{}

func (dialGuard) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ctx.Value(noDialKey{}) != nil {
			return nil, errDialRefused
		}
		c, err := next(ctx, network, addr)
		if slot, ok := ctx.Value(captureKey{}).(*netConnSlot); ok && err == nil {
			slot.c = c // the session's pub/sub connection (receive.go)
		}
		return c, err
	}
}

func (dialGuard) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialGuard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// backoff returns the wait before reconnect attempt n (n >= 1): a random
// duration in [d/2, d], where d doubles from lo with every attempt and stops
// at hi.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = clampDuration(d, lo, hi)
	half := d / 2
	return half + rand.N(d-half+1)
}

func clampDuration(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// sleepCtx waits for d or until ctx is done; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// poke leaves a token in c, a channel of capacity 1 that a loop waits on,
// unless one is there already. It never blocks.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
