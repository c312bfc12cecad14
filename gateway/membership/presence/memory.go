package presence

import (
	"context"
	"slices"
	"strings"
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
	socks   map[string][]string       // user → recorded socket ids, oldest first; guarded by mu
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
		socks:   map[string][]string{},
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
		if op.Socket != "" {
			if op.Delta < 0 && !m.unrecordLocked(op.User, op.Socket) {
				out[i] = s // evicted: uncounted already
				continue
			}
			if op.Delta > 0 && !slices.Contains(m.socks[op.User], op.Socket) {
				m.socks[op.User] = append(m.socks[op.User], op.Socket)
			}
		}
		events = append(events, m.addLocked(node, op.User, op.Delta, s, &out[i])...)
	}
	m.mu.Unlock()
	m.emit(events...)
	return out, nil
}

// ApplyEvictOldest implements Store.
func (m *Memory) ApplyEvictOldest(ctx context.Context, node string, op Op) (int, []string, error) {
	var evicted []string
	m.mu.Lock()
	s := m.sumLocked(op.User)
	held := map[string]int{} // node → victims chosen there
	for _, id := range slices.Clone(m.socks[op.User]) {
		if s-len(evicted) < op.Cap {
			break
		}
		n, _, _ := strings.Cut(id, ".")
		if m.users[n][op.User]-held[n] > 0 {
			held[n]++
			evicted = append(evicted, id)
		} else {
			m.unrecordLocked(op.User, id) // its replica no longer counts it
		}
	}
	if s-len(evicted) >= op.Cap {
		m.mu.Unlock()
		return -1, nil, nil // not enough recorded sockets to make room: evict none
	}
	for _, id := range evicted {
		m.unrecordLocked(op.User, id)
		n, _, _ := strings.Cut(id, ".")
		u := m.users[n]
		if u[op.User]--; u[op.User] <= 0 {
			delete(u, op.User)
		}
		s--
	}
	m.socks[op.User] = append(m.socks[op.User], op.Socket)
	var count int
	events := m.addLocked(node, op.User, 1, s, &count)
	m.mu.Unlock()
	m.emit(events...)
	return count, evicted, nil
}

// unrecordLocked drops a recorded socket; false when it was not recorded.
func (m *Memory) unrecordLocked(user, id string) bool {
	ids := m.socks[user]
	i := slices.Index(ids, id)
	if i < 0 {
		return false
	}
	if ids = slices.Delete(ids, i, i+1); len(ids) == 0 {
		delete(m.socks, user)
	} else {
		m.socks[user] = ids
	}
	return true
}

// addLocked applies delta to user's count on node, s being the user's
// cluster-wide count before it; it stores the count after it in out and
// returns the event to emit, if any.
func (m *Memory) addLocked(node, user string, delta, s int, out *int) []Event {
	u := m.users[node]
	if u == nil {
		u = map[string]int{}
		m.users[node] = u
	}
	if u[user] += delta; u[user] <= 0 {
		delete(u, user)
	}
	s = max(0, s+delta)
	*out = s
	if s == 0 {
		m.scheduleLocked(user, m.cfg.Debounce)
		return nil
	}
	if m.online[user] {
		return nil
	}
	m.online[user] = true
	return []Event{{Type: "presence", UserID: user, Online: true, TS: time.Now().UnixMilli()}}
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
