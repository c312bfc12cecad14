package inbox

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/replay"
)

// MemoryConfig configures NewMemory. Every zero value means the
// default named in the field's comment.
type MemoryConfig struct {
	publish.InboxConfig
	// SweepInterval is how often a background goroutine drops the inboxes
	// that expired (nothing appended for Retention). Zero means 1m. Expired
	// inboxes are already treated as missing; the sweep only bounds memory.
	SweepInterval time.Duration
	// Now is the clock of ids and ages. Nil means time.Now.
	Now func() time.Time
}

// Memory is the Inbox of the embedded single-process mode, with the
// semantics of Redis (ids, trimming by count and age, expiry, gaps)
// within the process: it is lost when the process ends, like a Redis
// without persistence. Append publishes through the broker it was given,
// holding the user's lock so that a user's events reach the broker in id
// order. A shard lock comes before whatever the broker takes
// (docs/LOCKS.md).
type Memory struct {
	broker fanout.Broker
	cfg    publish.InboxConfig
	now    func() time.Time
	start  int64 // unix ms of NewMemory: a position read before it is a gap
	seed   maphash.Seed
	shards [inboxShards]inboxShard

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the sweeper returns
	closeOnce sync.Once
}

const inboxShards = 64

type inboxShard struct {
	mu sync.Mutex
	m  map[string]*memStream // guarded by mu; nil after Close
}

// memStream is one user's inbox. Guarded by its shard's mu.
type memStream struct {
	events    []memEvent // oldest first; never empty
	last      StreamID   // the newest id generated
	deleted   StreamID   // the newest id trimmed (max-deleted-entry-id); 0-0 for none
	expiresMS int64      // unix ms after which the stream is gone
}

// memEvent is an entry.
type memEvent struct {
	id      StreamID
	payload []byte
}

var (
	_ Inbox       = (*Memory)(nil)
	_ SyncReader  = (*Memory)(nil)
	_ TokenReader = (*Memory)(nil)
)

// errClosed is returned after Close.
var errClosed = errors.New("fanout: inbox closed")

// NewMemory returns a Memory that publishes through broker and
// starts its sweeper, which runs until Close.
func NewMemory(broker fanout.Broker, cfg MemoryConfig) (*Memory, error) {
	if broker == nil {
		return nil, errors.New("fanout: NewMemory with a nil broker")
	}
	cfg.InboxConfig = cfg.InboxConfig.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Memory{
		broker: broker, cfg: cfg.InboxConfig, now: cfg.Now, start: cfg.Now().UnixMilli(), seed: maphash.MakeSeed(),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*memStream)
	}
	go m.sweepLoop(cfg.SweepInterval)
	return m, nil
}

func (m *Memory) shard(user string) *inboxShard {
	return &m.shards[maphash.String(m.seed, user)%inboxShards]
}

// streamLocked returns user's live stream, or nil; it drops an expired one.
func (m *Memory) streamLocked(sh *inboxShard, user string, nowMS int64) *memStream {
	s := sh.m[user]
	if s != nil && nowMS >= s.expiresMS {
		delete(sh.m, user)
		return nil
	}
	return s
}

// addLocked appends an event with a fresh id, as XADD with MAXLEN (exact
// here) and PEXPIRE do, and returns its id.
func (m *Memory) addLocked(sh *inboxShard, user string, payload []byte, nowMS int64) StreamID {
	s := m.streamLocked(sh, user, nowMS)
	if s == nil {
		s = &memStream{}
		sh.m[user] = s
	}
	id := StreamID{MS: uint64(max(nowMS, 0))}
	if id.MS <= s.last.MS {
		id = StreamID{MS: s.last.MS, Seq: s.last.Seq + 1}
	}
	s.last = id
	s.events = append(s.events, memEvent{id: id, payload: payload})
	// One entry more than MaxLen is kept, as the append script does: the
	// one before the newest MaxLen, so that a since at it (an event the
	// client saw) gets those MaxLen events instead of a gap.
	if extra := len(s.events) - (m.cfg.MaxLen + 1); extra > 0 {
		s.trimLocked(extra)
	}
	s.expiresMS = nowMS + m.cfg.Retention.Milliseconds()
	return id
}

// Append stores payload and publishes its frame through the broker.
func (m *Memory) Append(ctx context.Context, userID string, payload []byte) (string, error) {
	if userID == "" {
		return "", publish.ErrInvalidTarget
	}
	if err := publish.CheckInboxPayload(payload); err != nil {
		return "", err
	}
	payload = append([]byte(nil), payload...)
	sh := m.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		return "", errClosed
	}
	nowMS := m.now().UnixMilli()
	id := m.addLocked(sh, userID, payload, nowMS)
	s := sh.m[userID]
	// Age trim (XTRIM MINID): drop what is older than the retention.
	if minMS := int64(id.MS) - m.cfg.Retention.Milliseconds(); minMS > 0 {
		n := 0
		for n < len(s.events) && s.events[n].id.MS < uint64(minMS) {
			n++
		}
		s.trimLocked(n)
	}
	sid := id.String()
	if err := m.broker.Publish(ctx, publish.User(userID), publish.InboxFrame(sid, payload)); err != nil {
		return sid, err
	}
	return sid, nil
}

// trimLocked drops the n oldest events, remembering the newest of them.
func (s *memStream) trimLocked(n int) {
	if n <= 0 {
		return
	}
	s.deleted = s.events[n-1].id
	clear(s.events[:n])
	s.events = s.events[n:]
}

// Read follows the rules of Inbox.Read, like the Redis read script.
func (m *Memory) Read(_ context.Context, userID, since string) (Result, error) {
	var (
		from   StreamID
		gap    bool
		hasArg = since != ""
	)
	if hasArg {
		var ok bool
		if from, ok = ParseStreamID(since); !ok {
			gap = true
		}
	}
	sh := m.shard(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		return Result{}, errClosed
	}
	nowMS := m.now().UnixMilli()
	none := Position(nowMS) // the head of a user without an inbox
	// A position read without an inbox may miss what a stream created
	// after it held and lost: by expiry, when it is a retention old, or
	// with the process, when it is from before the start.
	position := hasArg && !gap && from.Seq == PositionSeq
	if position {
		read := int64(from.MS) + 1
		gap = read <= nowMS-m.cfg.Retention.Milliseconds() || read < m.start
	}
	s := m.streamLocked(sh, userID, nowMS)
	if s == nil {
		switch {
		case !hasArg:
			return Result{Head: none.String()}, nil
		case position && !gap:
			return Result{Head: since}, nil
		}
		return Result{Head: none.String(), Gap: true}, nil
	}
	out := Result{Head: s.last.String(), Gap: gap}
	if !hasArg || gap {
		return out, nil
	}
	if s.last.Compare(from) < 0 || from.Compare(s.deleted) <= 0 || (!position && from.Compare(s.events[0].id) < 0) {
		out.Gap = true
		return out, nil
	}
	i := 0
	for i < len(s.events) && s.events[i].id.Compare(from) <= 0 {
		i++
	}
	if len(s.events)-i > m.cfg.MaxLen {
		out.Gap = true
		return out, nil
	}
	for _, e := range s.events[i:] {
		out.Events = append(out.Events, Event{ID: e.id.String(), Payload: e.payload})
	}
	return out, nil
}

// ReadSync is Read, then a publish of sync on the user's channel through
// the broker, after every event appended before the read (Append
// publishes under the user's lock).
func (m *Memory) ReadSync(ctx context.Context, userID, since string, sync []byte) (Result, error) {
	rd, err := m.Read(ctx, userID, since)
	if err != nil {
		return rd, err
	}
	if err := m.broker.Publish(ctx, publish.User(userID), sync); err != nil {
		return Result{}, fmt.Errorf("fanout: inbox sync for %s: %w", userID, err)
	}
	return rd, nil
}

// ConsumeReadSync is store's Consume, then ReadSync (TokenReader).
func (m *Memory) ConsumeReadSync(ctx context.Context, store replay.Store, u replay.Use, since string, sync []byte) (Result, error) {
	return consumeThenRead(ctx, m, store, u, since, sync)
}

func (m *Memory) sweepLoop(every time.Duration) {
	defer close(m.done)
	t := time.NewTicker(every)
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

// sweep drops the expired inboxes, one shard at a time.
func (m *Memory) sweep() {
	nowMS := m.now().UnixMilli()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for user, s := range sh.m {
			if nowMS >= s.expiresMS {
				delete(sh.m, user)
			}
		}
		sh.mu.Unlock()
	}
}

// Close stops the sweeper and drops every inbox; Append and Read then fail.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			sh.m = nil
			sh.mu.Unlock()
		}
	})
	return nil
}
