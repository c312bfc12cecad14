package replay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// newFakeClock returns a clock that moves only when told to.
func newFakeClock() *testenv.Clock {
	return testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// len returns the number of records the store holds, expired or not.
func (m *Memory) len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.records)
		sh.mu.Unlock()
	}
	return n
}

func TestNewMemoryDefaults(t *testing.T) {
	testenv.NoLeaks(t)
	tests := []struct {
		name       string
		cfg        MemoryConfig
		wantShards int
	}{
		{"zero", MemoryConfig{}, 64},
		{"negative", MemoryConfig{Shards: -3, SweepInterval: -time.Second}, 64},
		{"set", MemoryConfig{Shards: 7, SweepInterval: time.Hour}, 7},
		{"one shard", MemoryConfig{Shards: 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(tc.cfg)
			defer m.Close()
			if got := len(m.shards); got != tc.wantShards {
				t.Errorf("got %d shards, want %d", got, tc.wantShards)
			}
			if got := mustConsume(t, m, "a", time.Minute); !got {
				t.Errorf("got first=false, want true")
			}
		})
	}
}

func TestMemoryExpiryBoundary(t *testing.T) {
	testenv.NoLeaks(t)
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now, SweepInterval: time.Hour})
	defer m.Close()

	const ttl = 30 * time.Second
	steps := []struct {
		advance time.Duration
		want    bool
	}{
		{0, true},
		{ttl - time.Nanosecond, false}, // one nanosecond before the end
		{time.Nanosecond, true},        // at the end: expired, consumed anew
		{ttl - time.Nanosecond, false}, // the new record has its own ttl
	}
	for i, st := range steps {
		clock.Add(st.advance)
		if got := mustConsume(t, m, "jti", ttl); got != st.want {
			t.Errorf("step %d (+%v): got first=%v, want %v", i+1, st.advance, got, st.want)
		}
	}
}

func TestMemoryFarExpiry(t *testing.T) {
	testenv.NoLeaks(t)
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now})
	defer m.Close()
	// Past 2262 Unix nanoseconds overflow int64: the record is capped.
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, want := range []bool{true, false} {
		got, err := m.Consume(context.Background(), "jti", minted(m), far)
		if err != nil || got != want {
			t.Errorf("call %d: got (%v, %v), want (%v, nil)", i+1, got, err, want)
		}
	}
}

// TestMemoryWallClock: the store compares expiry times with its clock's wall
// time, the clock token validity uses, so a step of the wall clock moves
// both together.
func TestMemoryWallClock(t *testing.T) {
	testenv.NoLeaks(t)
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now, SweepInterval: time.Hour})
	defer m.Close()
	exp := clock.Now().Add(30 * time.Second)
	if got := mustConsumeAt(t, m, "jti", exp); !got {
		t.Fatal("first: got false")
	}
	clock.Add(29 * time.Second)
	if got := mustConsumeAt(t, m, "jti", exp); got {
		t.Error("before expiry: got first=true")
	}
	clock.Add(time.Second) // the wall clock reaches exp
	if _, err := m.Consume(context.Background(), "jti", minted(m), exp); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: got %v, want ErrExpired", err)
	}
}

func mustConsumeAt(t *testing.T, s Store, jti string, exp time.Time) bool {
	t.Helper()
	first, err := s.Consume(context.Background(), jti, in(s, time.Second), exp)
	if err != nil {
		t.Fatalf("Consume(%q, %v): %v", jti, exp, err)
	}
	return first
}

func TestMemorySweep(t *testing.T) {
	testenv.NoLeaks(t)
	clock := newFakeClock()
	m := NewMemory(MemoryConfig{Now: clock.Now, SweepInterval: time.Millisecond})
	defer m.Close()

	const short, long = 100, 10
	for i := range short {
		mustConsume(t, m, "short-"+strconv.Itoa(i), time.Second)
	}
	for i := range long {
		mustConsume(t, m, "long-"+strconv.Itoa(i), time.Hour)
	}
	if got, want := m.len(), short+long; got != want {
		t.Fatalf("before expiry: got %d records, want %d", got, want)
	}

	clock.Add(2 * time.Second)
	testenv.Eventually(t, 5*time.Second, func() error {
		if got, want := m.len(), long; got != want {
			return fmt.Errorf("got %d records, want %d", got, want)
		}
		return nil
	})
	for i := range long {
		if got := mustConsume(t, m, "long-"+strconv.Itoa(i), time.Hour); got {
			t.Errorf("long-%d: got first=true after the sweep, want false", i)
		}
	}

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-m.done:
	default:
		t.Errorf("sweeper still running after Close returned")
	}
	if got := m.len(); got != 0 {
		t.Errorf("after Close: got %d records, want 0", got)
	}
}

func TestMemoryCloseConcurrentWithConsume(t *testing.T) {
	testenv.NoLeaks(t)
	m := NewMemory(MemoryConfig{SweepInterval: time.Millisecond})
	var (
		wg    sync.WaitGroup
		stop  atomic.Bool
		calls atomic.Int64
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				_, _ = m.Consume(context.Background(), fmt.Sprintf("%d-%d", g, i), time.Now().Add(time.Second), time.Now().Add(time.Millisecond))
				calls.Add(1)
			}
		})
	}
	// Let consumers and the sweeper overlap a little before closing.
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := calls.Load(); n < 1000 {
			return fmt.Errorf("only %d calls so far", n)
		}
		return nil
	})
	m.Close()
	stop.Store(true)
	wg.Wait()
}

func BenchmarkMemoryConsume(b *testing.B) {
	// A fixed pool of jtis keeps the map at a steady size, as the sweeper
	// does in production; the pool is cycled through on a fake clock that
	// moves past the ttl after every lap, so that each call is a first use
	// that replaces an expired record.
	const poolSize = 1 << 16
	jtis := make([]string, poolSize)
	for i := range jtis {
		jtis[i] = newJTI()
	}
	ctx := context.Background()
	mint := time.Now().Add(time.Hour) // after every store's start

	b.Run("first", func(b *testing.B) {
		var now atomic.Int64
		m := NewMemory(MemoryConfig{Now: func() time.Time { return time.Unix(0, now.Load()) }})
		defer m.Close()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if i == poolSize {
				i = 0
				now.Add(int64(time.Minute))
			}
			if first, _ := m.Consume(ctx, jtis[i], time.Unix(0, now.Load()).Add(time.Second), time.Unix(0, now.Load()).Add(time.Second)); !first {
				b.Fatal("got first=false")
			}
			i++
		}
	})

	b.Run("reused", func(b *testing.B) {
		m := NewMemory(MemoryConfig{})
		defer m.Close()
		hour := time.Now().Add(time.Hour)
		for _, jti := range jtis {
			m.Consume(ctx, jti, mint, hour)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if first, _ := m.Consume(ctx, jtis[i%poolSize], mint, hour); first {
				b.Fatal("got first=true")
			}
			i++
		}
	})

	b.Run("parallel-first", func(b *testing.B) {
		// Real clock and a 50µs life: every record has expired by the next
		// lap, so each call is a first use; the cost of time.Now is included.
		m := NewMemory(MemoryConfig{})
		defer m.Close()
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919)) // start each goroutine elsewhere in the pool
			for pb.Next() {
				m.Consume(ctx, jtis[i%poolSize], mint, time.Now().Add(50*time.Microsecond))
				i++
			}
		})
	})

	b.Run("parallel-reused", func(b *testing.B) {
		m := NewMemory(MemoryConfig{})
		defer m.Close()
		hour := time.Now().Add(time.Hour)
		for _, jti := range jtis {
			m.Consume(ctx, jti, mint, hour)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(7919))
			for pb.Next() {
				m.Consume(ctx, jtis[i%poolSize], mint, hour)
				i++
			}
		})
	})
}
