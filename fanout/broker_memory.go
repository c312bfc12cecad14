package fanout

import (
	"context"
	"errors"
	"sync"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// MemoryConfig configures NewMemory. Every zero value means the default named
// in the field's comment.
type MemoryConfig struct {
	// Logger receives misuse warnings and dropped control commands. Nil
	// means no logging.
	Logger *zap.Logger
	// Registerer receives the herald_broker_* metrics. Nil means none.
	Registerer prometheus.Registerer
}

// Memory is the Broker of the embedded single-process mode. It routes like
// Redis does for one replica: a user's messages reach the Handler only while
// the user is subscribed; socket, broadcast and control messages always do.
//
// Memory delivers synchronously, on the goroutine that calls Publish or
// PublishControl, so the Handler may be called from several goroutines at
// once. No lock of the broker is held during a Handler call: a Handler may
// call Subscribe, Unsubscribe or Publish, but not Close.
type Memory struct {
	log *zap.Logger
	m   *Metrics

	mu       sync.RWMutex
	h        Handler        // guarded by mu; set by Start
	users    map[string]int // guarded by mu; user → Subscribe calls minus Unsubscribe calls
	closed   bool           // guarded by mu
	inflight sync.WaitGroup // Handler calls in progress; Add under mu's read lock while not closed
}

var _ Broker = (*Memory)(nil)

// NewMemory returns a Memory broker. Metrics that cannot be registered are
// logged and left unregistered.
func NewMemory(cfg MemoryConfig) *Memory {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	m, err := NewMetrics(cfg.Registerer)
	if err != nil {
		log.Error("fanout: cannot register the broker metrics", zap.Error(err))
		m, _ = NewMetrics(nil)
	}
	m.Up.Set(1)
	return &Memory{log: log, m: m, users: make(map[string]int)}
}

// Start sets the handler. It fails for a nil handler, a second Start, or
// after Close.
func (b *Memory) Start(h Handler) error {
	if h == nil {
		return errors.New("fanout: Start with a nil handler")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return ErrClosed
	case b.h != nil:
		return errors.New("fanout: Start called twice")
	}
	b.h = h
	return nil
}

// Subscribe counts a subscription of userID and returns a closed channel:
// the subscription is active at once. An empty userID changes nothing.
func (b *Memory) Subscribe(userID string) <-chan struct{} {
	if userID == "" {
		b.log.Error("Subscribe with an empty user id")
		return closed
	}
	b.mu.Lock()
	if !b.closed {
		b.users[userID]++
		b.m.Subscriptions.Set(float64(len(b.users)))
	}
	b.mu.Unlock()
	return closed
}

// Unsubscribe undoes one Subscribe of userID; the user's messages stop when
// none is left.
func (b *Memory) Unsubscribe(userID string) {
	b.mu.Lock()
	n, ok := b.users[userID]
	switch {
	case b.closed:
	case !ok:
		b.log.Warn("Unsubscribe without a Subscribe", zap.String("user", userID))
	case n > 1:
		b.users[userID] = n - 1
	default:
		delete(b.users, userID)
		b.m.Subscriptions.Set(float64(len(b.users)))
	}
	b.mu.Unlock()
}

// Publish hands payload to the Handler before it returns, unless to is a
// user nobody subscribed to (or Start was not called yet).
func (b *Memory) Publish(_ context.Context, to publish.Target, payload []byte) error {
	if _, err := (publish.Channels{}).Name(to); err != nil {
		return err
	}
	h, err := b.enter(func() bool { return to.Kind != publish.ToUser || b.users[to.ID] > 0 })
	if err != nil || h == nil {
		return err
	}
	defer b.inflight.Done()
	b.m.Delivered(to)
	h.Deliver(to, payload)
	return nil
}

// PublishControl hands c to the Handler before it returns. It refuses a
// command no replica would apply with ErrInvalidControl.
func (b *Memory) PublishControl(_ context.Context, c publish.Control) error {
	if c.Check() != nil {
		return publish.ErrInvalidControl
	}
	h, err := b.enter(func() bool { return true })
	if err != nil || h == nil {
		return err
	}
	defer b.inflight.Done()
	b.m.ControlApplied()
	h.Control(c)
	return nil
}

// enter returns the handler to call, with inflight incremented, when the
// broker is open, started and deliver (called under the read lock) agrees.
func (b *Memory) enter(deliver func() bool) (Handler, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	switch {
	case b.closed:
		return nil, ErrClosed
	case b.h == nil || !deliver():
		return nil, nil
	}
	b.inflight.Add(1)
	return b.h, nil
}

// Ready reports true until Close.
func (b *Memory) Ready() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return !b.closed
}

// Close makes Publish fail with ErrClosed and waits for the Handler calls in
// progress, so nothing is delivered after it returns. It must not be called
// from a Handler method. It returns nil.
func (b *Memory) Close() error {
	b.mu.Lock()
	b.closed = true
	clear(b.users)
	b.mu.Unlock()
	b.inflight.Wait()
	b.m.Up.Set(0)
	b.m.Subscriptions.Set(0)
	return nil
}
