package replay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// harness builds one Store implementation for the shared tests.
type harness struct {
	name string
	// open returns a fresh store, closed when the test ends.
	open func(t *testing.T) Store
	// shortTTL is a ttl the expiry case can wait out.
	shortTTL time.Duration
	// pass makes d go by for the store: the injected clock of Memory moves,
	// while Redis's real clock needs nothing (the test polls instead).
	pass func(d time.Duration)
}

// harnesses returns a harness for Memory and one for Redis. The Redis one
// starts a redis-server owned by t.
func harnesses(t *testing.T) []harness {
	clock := newFakeClock()
	rd := testenv.StartRedis(t)
	client := rd.Client()
	return []harness{
		{
			name: "memory",
			open: func(t *testing.T) Store {
				s := NewMemory(MemoryConfig{Now: clock.Now})
				t.Cleanup(func() { s.Close() })
				return s
			},
			shortTTL: time.Second,
			pass:     clock.Add,
		},
		{
			name: "redis",
			open: func(t *testing.T) Store {
				s := mustRedis(NewRedis(client, RedisConfig{Prefix: "test:"}))
				t.Cleanup(func() { s.Close() })
				return s
			},
			shortTTL: 50 * time.Millisecond,
			pass:     func(time.Duration) {},
		},
	}
}

// newJTI returns a jti no other test uses.
func newJTI() string { return rand.Text() }

func mustConsume(t *testing.T, s Store, jti string, ttl time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := s.Consume(ctx, jti, minted(s), in(s, ttl))
	if err != nil {
		t.Fatalf("Consume(%q, %v): %v", jti, ttl, err)
	}
	return first
}

// in returns the time d from now by s's clock: the injected clock of a
// Memory, the real one otherwise.
func in(s Store, d time.Duration) time.Time {
	if m, ok := s.(*Memory); ok {
		return m.now().Add(d)
	}
	return time.Now().Add(d)
}

// minted is a mintedBy for a token minted now (by a store's fake clock,
// which may not have moved since the store started: a millisecond later).
func minted(s Store) time.Time { return in(s, time.Millisecond) }

func TestStoreConsume(t *testing.T) {
	testenv.NoLeaks(t)
	tests := []struct {
		name string
		run  func(t *testing.T, h harness, s Store)
	}{
		{
			name: "first consumer wins",
			run: func(t *testing.T, h harness, s Store) {
				jti := newJTI()
				for i, want := range []bool{true, false, false} {
					if got := mustConsume(t, s, jti, time.Minute); got != want {
						t.Errorf("call %d: got first=%v, want %v", i+1, got, want)
					}
				}
			},
		},
		{
			name: "distinct jtis are independent",
			run: func(t *testing.T, h harness, s Store) {
				a, b := newJTI(), newJTI()
				steps := []struct {
					jti  string
					want bool
				}{{a, true}, {b, true}, {a, false}, {b, false}}
				for i, st := range steps {
					if got := mustConsume(t, s, st.jti, time.Minute); got != st.want {
						t.Errorf("step %d (%s): got first=%v, want %v", i+1, st.jti, got, st.want)
					}
				}
			},
		},
		{
			name: "jti is free again after ttl",
			run: func(t *testing.T, h harness, s Store) {
				jti := newJTI()
				if got := mustConsume(t, s, jti, h.shortTTL); !got {
					t.Fatalf("first call: got first=false, want true")
				}
				h.pass(h.shortTTL)
				testenv.Eventually(t, 5*time.Second, func() error {
					if !mustConsume(t, s, jti, time.Minute) {
						return fmt.Errorf("%s still consumed %v after a ttl of %v", jti, h.shortTTL, h.shortTTL)
					}
					return nil
				})
				if got := mustConsume(t, s, jti, time.Minute); got {
					t.Errorf("after re-consuming: got first=true, want false")
				}
			},
		},
		{
			name: "invalid arguments",
			run: func(t *testing.T, h harness, s Store) {
				jti := newJTI()
				bad := []struct {
					name    string
					jti     string
					expires time.Time
				}{
					{"empty jti", "", in(s, time.Minute)},
					{"zero expiry", jti, time.Time{}},
					{"expired", jti, in(s, -time.Second)},
					{"expires now", jti, in(s, 0)},
				}
				for _, b := range bad {
					first, err := s.Consume(context.Background(), b.jti, minted(s), b.expires)
					if err == nil || errors.Is(err, ErrUnavailable) || first {
						t.Errorf("%s: got (%v, %v), want (false, an error not wrapping ErrUnavailable)", b.name, first, err)
					}
				}
				if _, err := s.Consume(context.Background(), jti, minted(s), in(s, -time.Second)); !errors.Is(err, ErrExpired) {
					t.Errorf("expired: got %v, want ErrExpired", err)
				}
				if _, err := s.Consume(context.Background(), jti, time.Time{}, in(s, time.Minute)); err == nil || errors.Is(err, ErrUnavailable) {
					t.Errorf("zero mint time: got %v, want an error", err)
				}
				// Minted before the store started: its record may be lost.
				if _, err := s.Consume(context.Background(), jti, in(s, -time.Hour), in(s, time.Minute)); !errors.Is(err, ErrExpired) {
					t.Errorf("minted before the store started: got %v, want ErrExpired", err)
				}
				if got := mustConsume(t, s, jti, time.Minute); !got {
					t.Errorf("after rejected calls: got first=false, want true (nothing was recorded)")
				}
			},
		},
		{
			name: "consume after close",
			run: func(t *testing.T, h harness, s Store) {
				for i := range 2 {
					if err := s.Close(); err != nil {
						t.Fatalf("Close #%d: %v", i+1, err)
					}
				}
				first, err := s.Consume(context.Background(), newJTI(), minted(s), in(s, time.Minute))
				if !errors.Is(err, ErrUnavailable) || first {
					t.Errorf("got (%v, %v), want (false, an error wrapping ErrUnavailable)", first, err)
				}
			},
		},
	}
	for _, h := range harnesses(t) {
		t.Run(h.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, h, h.open(t))
				})
			}
		})
	}
}

func TestStoreConcurrentConsume(t *testing.T) {
	testenv.NoLeaks(t)
	const (
		consumers = 40
		rounds    = 30
	)
	for _, h := range harnesses(t) {
		t.Run(h.name, func(t *testing.T) {
			s := h.open(t)
			for round := range rounds {
				jti := newJTI()
				var (
					start   = make(chan struct{})
					wg      sync.WaitGroup
					winners atomic.Int32
					errs    = make(chan error, consumers)
				)
				for range consumers {
					wg.Go(func() {
						<-start
						first, err := s.Consume(context.Background(), jti, minted(s), in(s, time.Minute))
						if err != nil {
							errs <- err
						}
						if first {
							winners.Add(1)
						}
					})
				}
				close(start)
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Errorf("round %d: Consume: %v", round, err)
				}
				if got := winners.Load(); got != 1 {
					t.Fatalf("round %d: got %d consumers with first=true, want 1", round, got)
				}
			}
		})
	}
}
