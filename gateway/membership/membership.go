package membership

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/gateway/membership/presence"
)

// Sockets counts the replica's sockets.
type Sockets interface {
	// Sockets returns how many sockets the replica holds.
	Sockets() int
}

// Shed moves sockets to other replicas.
type Shed interface {
	// Shed tells up to n welcomed sockets to reconnect elsewhere and
	// closes them (the graceful shutdown's path, for a few sockets). It
	// returns how many it told.
	Shed(n int) int
}

// UserCounts is the replica's registry, from which the per-user counts in
// presence are rebuilt.
type UserCounts interface {
	// UserCounts appends to dst the ops that rebuild this replica's counts
	// from the sockets it counted in presence (Join, then these); ok is
	// false while the replica drains (it has left: nothing is rebuilt).
	UserCounts(dst []presence.Op) (ops []presence.Op, ok bool)
}

// Broker tells whether the replica takes sockets.
type Broker interface {
	// Ready reports whether the broker is connected.
	Ready() bool
}

// Config is a Membership's configuration.
type Config struct {
	// Store is the shared membership; required.
	Store presence.Store
	// NodeID names this replica in Store; required.
	NodeID string
	// Interval is how often this replica's entry is refreshed; zero means
	// DefaultInterval.
	Interval time.Duration
	// Rebalance sheds sockets while this replica holds more than
	// (1+RebalanceMargin) × the cluster average; false means never.
	Rebalance bool
	// RebalanceMargin: zero means DefaultRebalanceMargin.
	RebalanceMargin float64
	// RebalanceRate is the share of the replica's sockets shed per second
	// at most; zero means DefaultRebalanceRate.
	RebalanceRate float64
	// DrainWindow is the window the shed sockets' reconnects are spread
	// over (they count as this replica's for it, plus two intervals);
	// zero means DefaultDrainWindow.
	DrainWindow time.Duration
	// UserPresence keeps per-user counts in Store (Queue); false means
	// none are kept.
	UserPresence bool

	// What membership sees of the gateway. Broker and Sockets are
	// required, Shed with Rebalance, UserCounts with UserPresence.
	Broker     Broker
	Sockets    Sockets
	Shed       Shed
	UserCounts UserCounts

	// Logger receives warnings; nil means none.
	Logger *zap.Logger
	// Registerer receives the rebalancing metrics; nil means none.
	Registerer prometheus.Registerer
}

// The defaults of Config's zero values.
const (
	DefaultInterval        = 2 * time.Second
	DefaultRebalanceMargin = 0.1
	DefaultRebalanceRate   = 0.02
	DefaultDrainWindow     = 5 * time.Second
)

// ErrConfig wraps what New refuses in a Config.
var ErrConfig = errors.New("membership: bad config")

// Membership keeps this replica in the shared membership: it refreshes its
// entry, rebalances (Run), and feeds the per-user counts (Queue, RunUsers).
type Membership struct {
	cfg   Config
	log   *zap.Logger
	bal   *balancer   // owned by Run's goroutine
	users *userCounts // queued to by any goroutine, applied by RunUsers'
}

// New validates cfg, fills its defaults and registers the metrics; it
// starts nothing.
func New(cfg Config) (*Membership, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.RebalanceMargin == 0 {
		cfg.RebalanceMargin = DefaultRebalanceMargin
	}
	if cfg.RebalanceRate == 0 {
		cfg.RebalanceRate = DefaultRebalanceRate
	}
	if cfg.DrainWindow == 0 {
		cfg.DrainWindow = DefaultDrainWindow
	}
	switch {
	case cfg.Store == nil, cfg.Broker == nil, cfg.Sockets == nil:
		return nil, errors.Join(ErrConfig, errors.New("a store, a broker and the sockets are required"))
	case cfg.Rebalance && cfg.Shed == nil:
		return nil, errors.Join(ErrConfig, errors.New("rebalancing needs Shed"))
	case cfg.UserPresence && cfg.UserCounts == nil:
		return nil, errors.Join(ErrConfig, errors.New("user presence needs UserCounts"))
	case cfg.Interval < 0, cfg.RebalanceMargin < 0, cfg.RebalanceRate < 0, cfg.RebalanceRate > 1, cfg.DrainWindow < 0:
		return nil, errors.Join(ErrConfig, errors.New("interval, margin and drain window must not be negative; the rate must be in (0, 1]"))
	}
	m := &Membership{cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = zap.NewNop()
	}
	var err error
	if m.bal, err = newBalancer(m); err != nil {
		return nil, err
	}
	m.users = newUserCounts(m)
	return m, nil
}

// Run joins the membership and keeps this replica's entry (and with
// Rebalance its share of the sockets) until stop is closed; it leaves as
// soon as drain is closed. Call it once, on a goroutine of its own.
func (m *Membership) Run(stop, drain <-chan struct{}) { m.bal.run(stop, drain) }

// RunUsers applies the queued per-user changes in order, in batches, until
// stop is closed, then applies what is left. Call it once, on a goroutine
// of its own, with UserPresence.
func (m *Membership) RunUsers(stop <-chan struct{}) { m.users.run(stop) }

// Queue queues a per-user change (+1 a socket opened, -1 it closed) for
// RunUsers. It never blocks on Redis. One user's changes must be queued in
// the order the sockets opened and closed.
func (m *Membership) Queue(op presence.Op) { m.users.queue(op) }
