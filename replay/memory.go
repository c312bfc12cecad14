package replay

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// MemoryConfig configures NewMemory.
type MemoryConfig struct {
	// Shards is the number of independently locked maps the jtis are spread
	// over. Zero (or a negative value) means 64.
	Shards int
	// SweepInterval is how often a background goroutine deletes expired
	// records. Zero (or a negative value) means 1s. Expired records are
	// already ignored by Consume; the sweep only bounds memory.
	SweepInterval time.Duration
	// Now is the clock. Nil means time.Now. Its wall time (Unix time) is
	// compared with the expiry times handed to Consume: the clock that token
	// validity is checked with, so that both agree when the wall clock steps.
	Now func() time.Time
}

// Memory is the Store of the embedded single-process mode. Its records live
// in this process only: they are lost on restart and not shared between
// replicas. Consume never blocks on anything but a shard lock and ignores
// its context.
type Memory struct {
	now     func() time.Time // never changes after NewMemory
	started time.Time        // reading of now in NewMemory: older tokens are refused
	seed    maphash.Seed     // picks the shard of a jti
	shards  []memoryShard    // length fixed in NewMemory

	stop      chan struct{} // closed by Close to stop the sweeper
	done      chan struct{} // closed by the sweeper when it returns
	closeOnce sync.Once
}

// memoryShard is one lock and the records behind it, padded so that
// neighbouring shards' locks do not share a cache line.
type memoryShard struct {
	mu sync.Mutex
	// records maps a jti to the end of its life in Unix nanoseconds (wall
	// time). Guarded by mu; nil once the store is closed.
	records map[string]int64
	_       [64 - 16]byte
}

// errMemoryClosed is what Consume returns after Close.
var errMemoryClosed = fmt.Errorf("%w: memory store closed", ErrUnavailable)

var _ Store = (*Memory)(nil)

// NewMemory returns a Memory with cfg's zero fields set to their defaults and
// starts its sweeper, which runs until Close.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Shards <= 0 {
		cfg.Shards = 64
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Memory{
		now:     cfg.Now,
		started: cfg.Now(),
		seed:    maphash.MakeSeed(),
		shards:  make([]memoryShard, cfg.Shards),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].records = make(map[string]int64)
	}
	go m.sweepLoop(cfg.SweepInterval)
	return m
}

// Consume reports whether jti is consumed for the first time. A record lives
// until expires; once expires has passed, Consume answers ErrExpired, as it
// does for a token minted before this store was created (mintedBy not after
// it): the process that created it may have restarted and forgotten it.
func (m *Memory) Consume(_ context.Context, jti string, mintedBy, expires time.Time) (bool, error) {
	if err := checkArgs(jti, mintedBy, expires); err != nil {
		return false, err
	}
	if !mintedBy.After(m.started) {
		return false, errForgotten
	}
	now, end := m.now().UnixNano(), unixNano(expires)
	sh := &m.shards[maphash.String(m.seed, jti)%uint64(len(m.shards))]

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.records == nil {
		return false, errMemoryClosed
	}
	if exp, ok := sh.records[jti]; ok && exp > now {
		return false, nil
	}
	if end <= now {
		return false, ErrExpired
	}
	// Clone so that the map never pins the memory of a larger string the
	// caller cut jti from (a decoded token, a request buffer).
	sh.records[strings.Clone(jti)] = end
	return true, nil
}

// Close stops the sweeper, waits for it to return and drops every record.
// Consume returns an error wrapping ErrUnavailable afterwards. Close is
// idempotent and always returns nil.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			sh.records = nil
			sh.mu.Unlock()
		}
	})
	return nil
}

// sweepLoop deletes expired records every interval until stop is closed.
func (m *Memory) sweepLoop(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep()
		}
	}
}

// sweep deletes the records that have expired, one shard lock at a time.
func (m *Memory) sweep() {
	for i := range m.shards {
		sh := &m.shards[i]
		// Read the clock per shard: a sweep of many shards may take a while.
		now := m.now().UnixNano()
		sh.mu.Lock()
		for jti, exp := range sh.records {
			if exp <= now {
				delete(sh.records, jti)
			}
		}
		sh.mu.Unlock()
	}
}

// maxUnixNano is the last time whose Unix nanoseconds fit in an int64.
var maxUnixNano = time.Unix(0, 1<<63-1)

// unixNano is t.UnixNano, capped for times past 2262.
func unixNano(t time.Time) int64 {
	if t.After(maxUnixNano) {
		return 1<<63 - 1
	}
	return t.UnixNano()
}
