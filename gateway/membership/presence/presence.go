package presence

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Store is the shared membership. See the package documentation.
type Store interface {
	// Join starts node's membership: the per-user counts a previous process
	// with the same node id left behind are forgotten (their users are
	// checked for offline).
	Join(ctx context.Context, node string) error
	// Refresh records that node holds sockets sockets, for the TTL, and
	// returns the membership it sees. It also runs the offline checks that
	// are due.
	Refresh(ctx context.Context, node string, sockets int) (Replicas, error)
	// Leave removes node from the replicas that count (a draining
	// replica), with its per-user counts.
	Leave(ctx context.Context, node string) error
	// Apply applies ops, in order, to node's per-user counts. It returns
	// each user's cluster-wide count after its op, or -1 for an op refused
	// by its Cap (the count is then unchanged).
	Apply(ctx context.Context, node string, ops []Op) ([]int, error)
	// Count returns user's socket count across the live replicas.
	Count(ctx context.Context, user string) (int, error)
	// ApplyEvictOldest applies one +1 op whose Socket is set, with the
	// evict-oldest policy: when the user already holds op.Cap sockets, the
	// oldest of the sockets recorded with their ids make room (each is
	// uncounted at once, on whichever replica holds it) and are returned,
	// for the caller to close. It returns the user's cluster-wide count
	// after the op, or -1 when no recorded socket could make room (the op
	// is then refused and the count unchanged).
	ApplyEvictOldest(ctx context.Context, node string, op Op) (count int, evicted []string, err error)
}

// Replicas is the membership as one Refresh saw it.
type Replicas struct {
	// Sockets is the socket count of every live replica, the caller's
	// included.
	Sockets map[string]int
	// Rejoined reports that the caller's entry was gone (it expired, or
	// Redis lost its data): its per-user counts may be gone with it, and
	// the caller should Join and apply them again.
	Rejoined bool
}

// Op is one change of a user's socket count on a replica.
type Op struct {
	User  string
	Delta int // +1: a socket opened; -1: a socket closed
	// Cap, when positive on a +1, refuses the op if the user already holds
	// Cap sockets across the cluster.
	Cap int
	// Socket, when set, is the socket's id ("<node>.<suffix>"), recorded
	// with its age for the evict-oldest policy. A -1 whose socket was
	// evicted (already uncounted) then changes nothing. Empty: the socket
	// is counted only.
	Socket string
}

// Config configures Redis and Memory.
type Config struct {
	// Prefix starts every key and the event channel (the gateway's channel
	// prefix). Empty means none.
	Prefix string
	// TTL is how long a replica's entry lives without a Refresh. Zero
	// means 6s (three refreshes at the gateway's default 2s interval).
	TTL time.Duration
	// Debounce is how long a user's cluster-wide count must stay 0 before
	// the offline event. Zero means 5s.
	Debounce time.Duration
	// Channel receives the presence events, after Prefix. Empty means
	// "presence".
	Channel string
	// OnEvent receives the events of Memory (Redis publishes them). It is
	// called without locks held, from the goroutine of the change or a timer.
	// Nil means events are dropped.
	OnEvent func(Event)
}

func (c *Config) setDefaults() {
	if c.TTL == 0 {
		c.TTL = 6 * time.Second
	}
	if c.Debounce == 0 {
		c.Debounce = 5 * time.Second
	}
	if c.Channel == "" {
		c.Channel = "presence"
	}
}

func (c *Config) validate() error {
	if c.TTL < 0 || c.Debounce < 0 {
		return errors.New("presence: durations must not be negative")
	}
	return nil
}

// Event is a presence event, as published (JSON).
type Event struct {
	Type   string `json:"type"` // "presence"
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
	TS     int64  `json:"ts"` // unix milliseconds
}

// ParseEvent decodes a payload received on the presence channel.
func ParseEvent(payload []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, err
	}
	if e.Type != "presence" || e.UserID == "" {
		return e, errors.New("presence: not a presence event")
	}
	return e, nil
}
