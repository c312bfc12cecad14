package admit

import (
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// UserLimiter is a token bucket per user, in shards. Buckets unused for a
// while are dropped by sweep, so the map does not grow with every user ever
// seen.
type UserLimiter struct {
	seed   maphash.Seed
	limit  rate.Limit
	burst  int
	shards [64]limiterShard
}

type limiterShard struct {
	mu sync.Mutex
	m  map[string]*userBucket // guarded by mu
}

type userBucket struct {
	lim  *rate.Limiter
	last time.Time // guarded by the shard's mu
}

func NewUserLimiter(perSecond float64, burst int) *UserLimiter {
	l := &UserLimiter{seed: maphash.MakeSeed(), limit: rate.Limit(perSecond), burst: burst}
	for i := range l.shards {
		l.shards[i].m = make(map[string]*userBucket)
	}
	return l
}

// Allow takes a token for user. When none is left it returns how long until
// one is.
func (l *UserLimiter) Allow(user string, now time.Time) (bool, time.Duration) {
	s := &l.shards[maphash.String(l.seed, user)%uint64(len(l.shards))]
	s.mu.Lock()
	b := s.m[user]
	if b == nil {
		b = &userBucket{lim: rate.NewLimiter(l.limit, l.burst)}
		s.m[user] = b
	}
	b.last = now
	s.mu.Unlock()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Sweep drops buckets idle for longer than a full refill takes.
func (l *UserLimiter) Sweep(now time.Time) {
	idle := time.Duration(float64(l.burst)/float64(l.limit)*float64(time.Second)) + time.Minute
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for user, b := range s.m {
			if now.Sub(b.last) > idle {
				delete(s.m, user)
			}
		}
		s.mu.Unlock()
	}
}
