package presence

import (
	"context"
	"sync"
	"time"
)

// Memory is the single-process Store of the embedded mode: the same
// semantics, events delivered to Config.OnEvent. Create it with NewMemory.
type Memory struct {
	cfg Config

	mu      sync.Mutex
	expires map[string]time.Time      // node → entry expiry; guarded by mu
	sockets map[string]int            // node → socket count; guarded by mu
	users   map[string]map[string]int // node → user → count; guarded by mu
	online  map[string]bool           // users announced online; guarded by mu
	pending map[string]*time.Timer    // offline checks; guarded by mu
}

// NewMemory returns an in-process Store.
func NewMemory(cfg Config) (*Memory, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Memory{
		cfg:     cfg,
		expires: map[string]time.Time{},
		sockets: map[string]int{},
		users:   map[string]map[string]int{},
		online:  map[string]bool{},
		pending: map[string]*time.Timer{},
	}, nil
}

// Join implements Store.
func (m *Memory) Join(ctx context.Context, node string) error {
	m.mu.Lock()
	m.forgetLocked(node, m.cfg.Debounce)
	m.expires[node] = time.Now().Add(m.cfg.TTL)
	m.sockets[node] = 0
	m.mu.Unlock()
	return nil
}

// Refresh implements Store.
func (m *Memory) Refresh(ctx context.Context, node string, sockets int) (Replicas, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, exp := range m.expires {
		if n != node && now.After(exp) {
			m.forgetLocked(n, 0)
			delete(m.expires, n)
			delete(m.sockets, n)
		}
	}
	exp, ok := m.expires[node]
	out := Replicas{Sockets: make(map[string]int, len(m.sockets)+1), Rejoined: !ok || now.After(exp)}
	m.expires[node] = now.Add(m.cfg.TTL)
	m.sockets[node] = sockets
	for n, c := range m.sockets {
		out.Sockets[n] = c
	}
	return out, nil
}

// Leave implements Store.
func (m *Memory) Leave(ctx context.Context, node string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.expires, node)
	delete(m.sockets, node)
	m.forgetLocked(node, m.cfg.Debounce)
	return nil
}

// Apply implements Store.
func (m *Memory) Apply(ctx context.Context, node string, ops []Op) ([]int, error) {
	out := make([]int, len(ops))
	var events []Event
	m.mu.Lock()
	for i, op := range ops {
		s := m.sumLocked(op.User)
		if op.Delta > 0 && op.Cap > 0 && s >= op.Cap {
			out[i] = -1
			continue
		}
		u := m.users[node]
		if u == nil {
			u = map[string]int{}
			m.users[node] = u
		}
		if u[op.User] += op.Delta; u[op.User] <= 0 {
			delete(u, op.User)
		}
		s = max(0, s+op.Delta)
		out[i] = s
		if s > 0 {
			if !m.online[op.User] {
				m.online[op.User] = true
				events = append(events, Event{Type: "presence", UserID: op.User, Online: true, TS: time.Now().UnixMilli()})
			}
		} else {
			m.scheduleLocked(op.User, m.cfg.Debounce)
		}
	}
	m.mu.Unlock()
	m.emit(events...)
	return out, nil
}

// Count implements Store.
func (m *Memory) Count(ctx context.Context, user string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sumLocked(user), nil
}

func (m *Memory) sumLocked(user string) int {
	s := 0
	for _, u := range m.users {
		s += u[user]
	}
	return s
}

// forgetLocked drops node's per-user counts and schedules their users'
// offline checks after delay.
func (m *Memory) forgetLocked(node string, delay time.Duration) {
	for user := range m.users[node] {
		m.scheduleLocked(user, delay)
	}
	delete(m.users, node)
}

func (m *Memory) scheduleLocked(user string, delay time.Duration) {
	if t := m.pending[user]; t != nil {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		m.mu.Lock()
		if m.pending[user] != t {
			m.mu.Unlock()
			return
		}
		delete(m.pending, user)
		announce := m.sumLocked(user) == 0 && m.online[user]
		if announce {
			delete(m.online, user)
		}
		m.mu.Unlock()
		if announce {
			m.emit(Event{Type: "presence", UserID: user, Online: false, TS: time.Now().UnixMilli()})
		}
	})
	m.pending[user] = t
}

func (m *Memory) emit(events ...Event) {
	if m.cfg.OnEvent == nil {
		return
	}
	for _, e := range events {
		m.cfg.OnEvent(e)
	}
}

// Close stops the pending offline checks.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for u, t := range m.pending {
		t.Stop()
		delete(m.pending, u)
	}
	return nil
}
