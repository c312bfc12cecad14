package redis

import (
	"errors"
	"fmt"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Config configures New and NewCluster. Every zero value means the default named
// in the field's comment.
type Config struct {
	// Prefix starts every channel name (see Channels). Empty means none.
	Prefix string
	// NodeID names this replica: the socket ids it hands out are
	// "<NodeID>.<suffix>", and it receives the messages of exactly those
	// sockets. Required; see ValidNodeID and NewNodeID. Two live replicas
	// must never share one.
	NodeID string
	// UnsubscribeGrace is how long a user's channel stays subscribed after
	// its last Unsubscribe; a Subscribe within it cancels the UNSUBSCRIBE, so
	// reconnect churn sends no UNSUBSCRIBE/SUBSCRIBE pairs. Zero means 2s; a
	// negative value means none (unsubscribe at the next flush).
	UnsubscribeGrace time.Duration
	// BatchSize is the most channels one SUBSCRIBE or UNSUBSCRIBE names.
	// Zero means 500.
	BatchSize int
	// FlushInterval is how long Subscribe and Unsubscribe calls are gathered
	// before the flusher sends them as batched commands. Zero means 2ms; a
	// negative value means no gathering (each wake-up flushes at once).
	FlushInterval time.Duration
	// HealthInterval is how often the broker PINGs its pub/sub connection.
	// A PING not answered before the next one is due counts as a lost
	// connection. Zero means 5s.
	HealthInterval time.Duration
	// ReconnectMin and ReconnectMax bound the jittered exponential backoff
	// between connection attempts: attempt n waits a random duration in
	// [d/2, d] with d = ReconnectMin·2^(n-1), at most ReconnectMax. Zero means
	// 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives connection state changes and dropped messages
	// (sampled). Nil means no logging.
	Logger *zap.Logger
	// Registerer receives the herald_broker_* metrics. Nil means none.
	Registerer prometheus.Registerer
	// RefreshInterval is how often NewCluster's broker reads the
	// cluster's slot map (CLUSTER SLOTS) to follow failovers and slot
	// migrations; a lost shard connection, a MOVED reply and a server-pushed
	// SUNSUBSCRIBE also trigger a read. Zero means 1s. New ignores it.
	RefreshInterval time.Duration
}

// DefaultUnsubscribeGrace is Config.UnsubscribeGrace's zero value.
const DefaultUnsubscribeGrace = 2 * time.Second

func (c *Config) setDefaults() {
	if c.UnsubscribeGrace == 0 {
		c.UnsubscribeGrace = DefaultUnsubscribeGrace
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 2 * time.Millisecond
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 5 * time.Second
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func (c *Config) validate() error {
	var errs []error
	if !publish.ValidNodeID(c.NodeID) {
		errs = append(errs, fmt.Errorf("node id %q: use 1 to 64 ASCII letters, digits, '_' or '-'", c.NodeID))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size %d: must not be negative", c.BatchSize))
	}
	if c.HealthInterval < 0 || c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.RefreshInterval < 0 {
		errs = append(errs, errors.New("health and reconnect intervals must not be negative"))
	}
	if c.ReconnectMin > c.ReconnectMax {
		errs = append(errs, fmt.Errorf("reconnect min %s exceeds reconnect max %s", c.ReconnectMin, c.ReconnectMax))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fanout: redis config: %w", err)
	}
	return nil
}
