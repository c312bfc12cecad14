package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Broker is the fanout.Broker of the multi-replica mode on one Redis, or on
// a Sentinel-managed primary (redis.NewFailoverClient): one classic session
// receives, and the client publishes. See the package documentation for the
// channels and the subscription protocol.
//
// Broker delivers from one goroutine, its session's receive loop, in the
// order Redis sent the messages; a Handler must not call Close. Subscribe
// and Unsubscribe only record what is wanted and never wait for the
// network; a flusher goroutine turns them into batched commands.
type Broker struct {
	s      *session      // read-only
	client *redis.Client // the caller's; PUBLISH
	ch     publish.Channels
}

var _ fanout.Broker = (*Broker)(nil)

// New returns a Broker that uses client. It does not contact Redis; Start
// does.
//
// The client stays the caller's, who closes it after Close. New adds a hook
// to it that refuses the dials go-redis's PubSub makes on its own to replace
// a broken connection, so that this broker reconnects on its own terms
// (batches, backoff, Resync); it changes nothing else.
func New(client *redis.Client, cfg Config) (*Broker, error) {
	if client == nil {
		return nil, errors.New("fanout: NewRedis with a nil client")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := fanout.NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("fanout: register metrics: %w", err)
	}
	return newBroker(client, cfg, publish.NewChannels(cfg.Prefix), m), nil
}

// newBroker is New with the names and the metrics, for a Cluster's classic
// connection too; cfg is valid.
func newBroker(client *redis.Client, cfg Config, ch publish.Channels, m *fanout.Metrics) *Broker {
	b := &Broker{client: client, ch: ch}
	b.s = newSession(client, cfg, ch, classicMode, m, b)
	return b
}

// NodeID returns the replica's node id.
func (b *Broker) NodeID() string { return b.s.cfg.NodeID }

// Start begins connecting and delivering to h, and returns at once: Start
// does not wait for Redis. Until the pub/sub connection is up and its
// subscriptions are confirmed, Ready reports false; an unreachable Redis is
// retried in the background with backoff, and each failure is logged. The
// error is for a misuse: a nil handler, a second Start, or Start after Close.
func (b *Broker) Start(h fanout.Handler) error { return b.s.start(h) }

// Subscribe records that userID is wanted and returns the channel that is
// closed once Redis has confirmed the subscription (at once if it is
// active). Calls are counted: the user stays subscribed until as many
// Unsubscribe calls. Calls made while Redis is unreachable take effect after
// the reconnection. An empty userID, and any call after Close, get a closed
// channel and change nothing. If Unsubscribe calls undo every Subscribe
// before the subscription becomes active, the channel is closed when the
// user is forgotten (after the grace period).
func (b *Broker) Subscribe(userID string) <-chan struct{} {
	if userID == "" {
		b.s.log.Error("Subscribe with an empty user id")
		return fanout.Confirmed()
	}
	return b.s.subscribe(userID)
}

// Unsubscribe undoes one Subscribe of userID. When none is left, the
// channel is unsubscribed after the grace period, unless a Subscribe comes
// first.
func (b *Broker) Unsubscribe(userID string) { b.s.unsubscribe(userID, true) }

// Publish runs PUBLISH on the channel of to (see publish.Channels) with the
// client.
func (b *Broker) Publish(ctx context.Context, to publish.Target, payload []byte) error {
	if b.s.closed.Load() {
		return fanout.ErrClosed
	}
	return publishTo(ctx, b.client, b.ch, to, payload)
}

// PublishControl publishes c as JSON on the control channel. It refuses a
// command no replica would apply with publish.ErrInvalidControl.
func (b *Broker) PublishControl(ctx context.Context, c publish.Control) error {
	if b.s.closed.Load() {
		return fanout.ErrClosed
	}
	return publishControl(ctx, b.client, b.ch, c)
}

// Ready reports whether the pub/sub connection is up and Redis has
// confirmed the static subscriptions and every user subscription wanted
// when the connection was made.
func (b *Broker) Ready() bool { return b.s.ready.Load() }

// Close stops the loops and closes the pub/sub connection; Redis drops its
// subscriptions with it. Nothing is delivered after Close returns, and
// Publish then fails with ErrClosed. Close does not close the client. It
// must not be called from a Handler method. It returns nil.
func (b *Broker) Close() error {
	b.s.close()
	return nil
}

// The session's events: a classic session is never told MOVED nor has a
// channel pushed out; a restored connection means messages were lost.
func (b *Broker) lost(error)        {}
func (b *Broker) restored()         { b.s.h.Resync() }
func (b *Broker) pushed(string)     {}
func (b *Broker) moved(int, string) {}

// publishTo publishes payload on the channel of to: by SPUBLISH for a user
// or socket channel with sharded names, by PUBLISH otherwise. It is the one
// place where the names pick the command.
func publishTo(ctx context.Context, c redis.Cmdable, ch publish.Channels, to publish.Target, payload []byte) error {
	name, err := ch.Name(to)
	if err != nil {
		return err
	}
	if ch.Sharded() && (to.Kind == publish.ToUser || to.Kind == publish.ToSocket) {
		err = c.SPublish(ctx, name, payload).Err()
	} else {
		err = c.Publish(ctx, name, payload).Err()
	}
	if err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", name, err)
	}
	return nil
}

// publishControl publishes c as JSON on the control channel, or returns
// publish.ErrInvalidControl for a command no replica would apply.
func publishControl(ctx context.Context, c redis.Cmdable, ch publish.Channels, cmd publish.Control) error {
	payload, err := cmd.Encode()
	if err != nil {
		return err
	}
	if err := c.Publish(ctx, ch.Control(), payload).Err(); err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", ch.Control(), err)
	}
	return nil
}

// partMetrics returns m with gauges of its own for up and subscriptions: a
// part of a Cluster (its classic session, a shard) counts messages, drops
// and reconnects in the Cluster's metrics, and the Cluster exports up and
// subscriptions for the whole.
func partMetrics(m *fanout.Metrics, part string) *fanout.Metrics {
	p := *m
	p.Up = prometheus.NewGauge(prometheus.GaugeOpts{Name: part + "_up"})
	p.Subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{Name: part + "_subscriptions"})
	return &p
}
