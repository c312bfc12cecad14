package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// RedisConfig configures NewRedis. Every zero value means the default named
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
	// RefreshInterval is how often NewRedisCluster's broker reads the
	// cluster's slot map (CLUSTER SLOTS) to follow failovers and slot
	// migrations; a lost shard connection, a MOVED reply and a server-pushed
	// SUNSUBSCRIBE also trigger a read. Zero means 1s. NewRedis ignores it.
	RefreshInterval time.Duration
}

// DefaultUnsubscribeGrace is RedisConfig.UnsubscribeGrace's zero value.
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

// Redis is the Broker of the multi-replica mode, on Redis pub/sub. See the
// package documentation for the channels and the subscription protocol.
//
// Redis delivers from one goroutine, its receive loop, which reads the
// pub/sub connection and calls the Handler for each message in the order
// Redis sent them; a Handler must not call Close. Subscribe and Unsubscribe
// only record what is wanted and never wait for the network; a flusher
// goroutine turns them into batched commands.
type Broker struct {
	client *redis.Client // owned by the caller; used for PUBLISH and to open the pub/sub connection
	cfg    Config        // defaults filled; read-only
	ch     publish.Channels
	log    *zap.Logger
	drops  *zap.Logger // log, sampled to one line a second
	m      *fanout.Metrics

	// The static subscriptions; read-only. socketPattern is empty with
	// sharded names: a RedisCluster subscribes each socket on its shard.
	socketPattern, exceptPattern, broadcast, control string
	statics                                          int // how many of them a connection confirms

	ctx     context.Context    // cancelled by Close
	cancel  context.CancelFunc // cancels ctx
	guarded context.Context    // ctx, marked so that go-redis does not reconnect by itself
	loops   sync.WaitGroup     // the run and flush loops
	wake    chan struct{}      // capacity 1; a token means the flusher has work
	ready   atomic.Bool        // connected, and every wanted subscription confirmed
	closed  atomic.Bool        // set by Close
	pongs   atomic.Uint64      // the latest health PING answered on the current connection

	mu      sync.Mutex
	started bool          // guarded by mu
	closing bool          // guarded by mu; set by Close
	ps      *redis.PubSub // guarded by mu; the current connection, nil while there is none
	// subs is keyed by user id; in shard mode by channel name, so that one
	// shard serves user and socket channels alike (see key).
	subs          *subscriptions      // guarded by mu
	staticPending int                 // guarded by mu; static subscriptions not yet confirmed on ps
	pushed        map[string]struct{} // guarded by mu; shard mode: channels the server dropped or refused (MOVED)
	sessionReady  bool                // guarded by mu; ready was set for ps

	// shard is nil for a standalone broker. For one shard of a RedisCluster
	// it holds the cluster broker's callbacks; read-only.
	shard *shardHooks

	// Owned by the run loop (h is set by Start before the loop starts).
	h         fanout.Handler
	everReady bool      // ready was set once: the next time is a recovery
	downSince time.Time // when ready was last cleared
}

var _ fanout.Broker = (*Broker)(nil)

// shardHooks make a Redis broker one shard of a RedisCluster: it then has no
// static subscriptions, subscribes user and socket channels, named in full,
// with SSUBSCRIBE on one master, and reports to the cluster broker instead
// of calling Handler.Resync. The callbacks run on the broker's loops and
// must not block or call the shard's Close.
type shardHooks struct {
	// lost is called when a connection fails or cannot be made.
	lost func(err error)
	// restored is called when a connection after the first is ready, with
	// the channels subscribed on it: their messages since the loss are gone.
	restored func(channels []string)
	// pushed is called when the server unsubscribed a channel that was
	// wanted: its slot moved to another shard.
	pushed func(channel string)
	// moved is called when the server answered MOVED to an SSUBSCRIBE: the
	// master at addr serves slot now, and the channels of that slot sent
	// here are not subscribed (takePushed returns them).
	moved func(slot int, addr string)
}

// kickPing is a PING payload that only asks the receive loop to look at
// readiness again (health PINGs carry a number).
const kickPing = "ready?"

// NewRedis returns a Redis broker that uses client. It does not contact
// Redis; Start does.
//
// The client stays the caller's, who closes it after Close. NewRedis adds a
// hook to it that refuses the dials go-redis's PubSub makes on its own to
// replace a broken connection, so that this broker reconnects on its own
// terms (batches, backoff, Resync); it changes nothing else.
func New(client *redis.Client, cfg Config) (*Broker, error) {
	return newRedis(client, cfg, publish.NewChannels(cfg.Prefix), nil)
}

// newRedis is NewRedis with the channel names, and shard hooks for a shard
// of a RedisCluster (nil for a standalone broker).
func newRedis(client *redis.Client, cfg Config, ch publish.Channels, shard *shardHooks) (*Broker, error) {
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
	if shard != nil {
		// The cluster broker exports the sum over its shards.
		m.Up = prometheus.NewGauge(prometheus.GaugeOpts{Name: "shard_up"})
		m.Subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "shard_subscriptions"})
	}
	client.AddHook(dialGuard{})
	log := cfg.Logger.With(zap.String("node", cfg.NodeID))
	ctx, cancel := context.WithCancel(context.Background())
	r := &Broker{
		client: client,
		cfg:    cfg,
		ch:     ch,
		log:    log,
		drops: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, 1, 0)
		})),
		m:             m,
		exceptPattern: ch.ExceptPattern(),
		broadcast:     ch.Broadcast(),
		control:       ch.Control(),
		ctx:           ctx,
		cancel:        cancel,
		guarded:       context.WithValue(ctx, noDialKey{}, true),
		wake:          make(chan struct{}, 1),
		subs:          newSubscriptions(cfg.UnsubscribeGrace),
		shard:         shard,
	}
	switch {
	case shard != nil: // no static subscription
	case ch.Sharded():
		// A RedisCluster's classic connection: the socket channels are
		// sharded, so no pattern; the exception pattern, broadcast and
		// control.
		r.statics = 3
	default:
		r.socketPattern = ch.SocketPattern(cfg.NodeID)
		r.statics = 4
	}
	return r, nil
}

// NodeID returns the replica's node id.
func (r *Broker) NodeID() string { return r.cfg.NodeID }

// Start begins connecting and delivering to h, and returns at once: Start
// does not wait for Redis. Until the pub/sub connection is up and its
// subscriptions are confirmed, Ready reports false; an unreachable Redis is
// retried in the background with backoff, and each failure is logged. The
// error is for a misuse: a nil handler, a second Start, or Start after Close.
func (r *Broker) Start(h fanout.Handler) error {
	if h == nil {
		return errors.New("fanout: Start with a nil handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closing:
		return fanout.ErrClosed
	case r.started:
		return errors.New("fanout: Start called twice")
	}
	r.started = true
	r.h = h
	r.loops.Add(2)
	go r.run()
	go r.flushLoop()
	return nil
}

// Subscribe records that userID is wanted and returns the channel that is
// closed once Redis has confirmed the subscription (at once if it is
// active). Calls are counted: the user stays subscribed until as many
// Unsubscribe calls. Calls made while Redis is unreachable take effect after
// the reconnection. An empty userID, and any call after Close, get a closed
// channel and change nothing. If Unsubscribe calls undo every Subscribe
// before the subscription becomes active, the channel is closed when the
// user is forgotten (after the grace period).
func (r *Broker) Subscribe(userID string) <-chan struct{} {
	if userID == "" {
		r.log.Error("Subscribe with an empty user id")
		return fanout.Confirmed()
	}
	return r.subscribe(userID)
}

// subscribe is Subscribe for a key of subs: a user id, or in shard mode a
// channel name.
func (r *Broker) subscribe(key string) <-chan struct{} {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return fanout.Confirmed()
	}
	ready, work := r.subs.add(key)
	r.mu.Unlock()
	if work {
		r.wakeFlusher()
	}
	return ready
}

// Unsubscribe undoes one Subscribe of userID. When none is left, the
// channel is unsubscribed after the grace period, unless a Subscribe comes
// first.
func (r *Broker) Unsubscribe(userID string) { r.unsubscribe(userID, true) }

// unsubscribe is Unsubscribe for a key of subs; without grace, the channel
// is unsubscribed at the next flush.
func (r *Broker) unsubscribe(key string, grace bool) {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return
	}
	ok, work := r.subs.remove(key, time.Now(), grace)
	r.mu.Unlock()
	if !ok {
		r.log.Warn("Unsubscribe without a Subscribe", zap.String("key", key))
	}
	if work {
		r.wakeFlusher()
	}
}

// Publish runs PUBLISH on the channel of to (see Channels) with the client.
func (r *Broker) Publish(ctx context.Context, to publish.Target, payload []byte) error {
	if r.closed.Load() {
		return fanout.ErrClosed
	}
	name, err := r.ch.Name(to)
	if err != nil {
		return err
	}
	if err := r.client.Publish(ctx, name, payload).Err(); err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", name, err)
	}
	return nil
}

// PublishControl publishes c as JSON on the control channel. It refuses a
// command no replica would apply with ErrInvalidControl.
func (r *Broker) PublishControl(ctx context.Context, c publish.Control) error {
	if r.closed.Load() {
		return fanout.ErrClosed
	}
	payload, err := c.Encode()
	if err != nil {
		return err
	}
	if err := r.client.Publish(ctx, r.control, payload).Err(); err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", r.control, err)
	}
	return nil
}

// Ready reports whether the pub/sub connection is up and Redis has
// confirmed the static subscriptions and every user subscription wanted
// when the connection was made.
func (r *Broker) Ready() bool { return r.ready.Load() }

// Close stops the loops and closes the pub/sub connection; Redis drops its
// subscriptions with it. Nothing is delivered after Close returns, and
// Publish then fails with ErrClosed. Close does not close the client. It
// must not be called from a Handler method. It returns nil.
func (r *Broker) Close() error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.loops.Wait()
		return nil
	}
	r.closing = true
	r.closed.Store(true)
	ps := r.ps
	r.mu.Unlock()

	r.cancel()
	if ps != nil {
		_ = ps.Close() // ends the receive loop's read
	}
	r.loops.Wait()
	r.ready.Store(false)
	r.m.Up.Set(0)
	r.m.Subscriptions.Set(0)
	return nil
}

func (r *Broker) wakeFlusher() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run is the connection loop: connect, receive until the connection fails,
// back off, and again, until Close.
func (r *Broker) run() {
	defer r.loops.Done()
	attempt := 0 // connection attempts since the last connection was made
	for {
		if attempt > 0 {
			d := backoff(attempt, r.cfg.ReconnectMin, r.cfg.ReconnectMax)
			r.log.Info("redis pub/sub reconnecting", zap.Int("attempt", attempt), zap.Duration("backoff", d))
			if !sleepCtx(r.ctx, d) {
				return
			}
		}
		ps, err := r.dial()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			if r.shard != nil {
				r.shard.lost(err)
			}
			attempt++
			r.log.Warn("redis pub/sub connection failed", zap.Int("attempt", attempt), zap.Error(err))
			continue
		}
		attempt = 1
		err = r.session(ps)
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		wanted := len(r.subs.users)
		r.mu.Unlock()
		r.log.Warn("redis pub/sub connection lost", zap.Error(err), zap.Int("user_channels", wanted))
		if r.shard != nil {
			r.shard.lost(err)
		}
	}
}

// dial opens a pub/sub connection and sends the static subscriptions.
func (r *Broker) dial() (*redis.PubSub, error) {
	ps := r.client.Subscribe(r.ctx) // without channels: no connection yet
	if r.shard != nil {
		// No static subscription: a PING opens the connection.
		if err := ps.Ping(r.ctx, "open"); err != nil {
			_ = ps.Close()
			return nil, err
		}
		return ps, nil
	}
	// The first command opens the connection, so it alone may dial.
	patterns := []string{r.exceptPattern}
	if r.socketPattern != "" {
		patterns = append(patterns, r.socketPattern)
	}
	if err := ps.PSubscribe(r.ctx, patterns...); err != nil {
		_ = ps.Close()
		return nil, err
	}
	if err := ps.Subscribe(r.guarded, r.broadcast, r.control); err != nil {
		_ = ps.Close()
		return nil, err
	}
	return ps, nil
}

// session makes ps the current connection, has the flusher subscribe every
// wanted user on it, and receives from it until it fails. It returns why.
func (r *Broker) session(ps *redis.PubSub) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		_ = ps.Close()
		return fanout.ErrClosed
	}
	r.ps = ps
	r.staticPending = r.statics
	r.sessionReady = false
	r.subs.connected()
	r.mu.Unlock()
	r.pongs.Store(0)
	r.wakeFlusher()

	done := make(chan struct{})
	var health sync.WaitGroup
	health.Go(func() { r.health(ps, done) })

	err := r.receive(ps)

	r.mu.Lock()
	r.ps = nil
	r.sessionReady = false
	r.subs.lost()
	r.m.Subscriptions.Set(0)
	r.mu.Unlock()
	if r.ready.Swap(false) {
		r.downSince = time.Now()
		r.m.Up.Set(0)
	}
	_ = ps.Close()
	close(done)
	health.Wait()
	return err
}

// receive hands what ps delivers to the handler until a read fails. It is
// the only reader of ps, and reads without a deadline: a dead connection
// is noticed by its error, by the health check, which closes ps, or by Close.
func (r *Broker) receive(ps *redis.PubSub) error {
	for {
		msg, err := ps.Receive(r.guarded)
		if slot, addr, ok := movedError(err); ok && r.shard != nil {
			// An error reply, read in full: the connection is sound.
			r.onMoved(slot, addr)
			continue
		}
		if err != nil {
			return err
		}
		switch msg := msg.(type) {
		case *redis.Message:
			r.dispatch(msg)
		case *redis.Subscription:
			r.onSubscription(msg)
		case *redis.Pong:
			r.onPong(msg)
		}
	}
}

// dispatch hands one message to the handler, or counts why not.
func (r *Broker) dispatch(msg *redis.Message) {
	if msg.Channel == r.control {
		c, reason := fanout.DecodeControl([]byte(msg.Payload))
		if reason != "" {
			r.dropped(reason, msg.Channel, zap.String("op", c.Op))
			return
		}
		r.m.ControlApplied()
		r.h.Control(c)
		return
	}
	to, ok := r.ch.Parse(msg.Channel)
	if !ok {
		r.dropped(fanout.DropBadChannel, msg.Channel)
		return
	}
	r.m.Delivered(to)
	r.h.Deliver(to, []byte(msg.Payload))
}

func (r *Broker) dropped(reason, channel string, fields ...zap.Field) {
	r.m.Drop(reason)
	r.drops.Warn("dropped a pub/sub message", append(fields, zap.String("reason", reason), zap.String("channel", channel))...)
}

// onSubscription counts Redis's confirmation of a SUBSCRIBE or PSUBSCRIBE.
func (r *Broker) onSubscription(s *redis.Subscription) {
	r.mu.Lock()
	switch s.Kind {
	case "psubscribe":
		if s.Channel == r.socketPattern || s.Channel == r.exceptPattern {
			r.staticPending--
		}
	case "subscribe":
		if s.Channel == r.broadcast || s.Channel == r.control {
			r.staticPending--
		} else if r.shard == nil {
			if user, ok := r.ch.UserID(s.Channel); ok {
				r.subs.confirm(user)
				r.m.Subscriptions.Set(float64(r.subs.active))
			}
		}
	case "ssubscribe":
		if r.shard != nil {
			r.subs.confirm(s.Channel)
			r.m.Subscriptions.Set(float64(r.subs.active))
		}
	case "sunsubscribe":
		// Either the reply to our SUNSUBSCRIBE, or the server dropping a
		// channel whose slot it no longer serves. A channel still marked
		// sent tells them apart (a SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE
		// sequence in flight may look pushed: the channel is then
		// subscribed once more). A dropped channel is no longer active
		// here; the cluster broker re-reads the slot map and either moves
		// it to its new master or has it subscribed again here
		// (takePushed, resubscribe).
		if e := r.subs.users[s.Channel]; r.shard != nil && e != nil && e.sent {
			e.sent = false
			r.subs.setActive(e, false)
			r.m.Subscriptions.Set(float64(r.subs.active))
			r.addPushedLocked(s.Channel)
			r.shard.pushed(s.Channel) // does not block or lock
		}
	}
	ready, users := r.checkReadyLocked()
	r.mu.Unlock()
	if ready {
		r.markReady(users)
	}
}

func (r *Broker) onPong(p *redis.Pong) {
	if n, err := strconv.ParseUint(p.Payload, 10, 64); err == nil {
		r.pongs.Store(n)
		return
	}
	if p.Payload == kickPing {
		r.mu.Lock()
		ready, users := r.checkReadyLocked()
		r.mu.Unlock()
		if ready {
			r.markReady(users)
		}
	}
}

// onMoved handles a MOVED reply to an SSUBSCRIBE of this shard: slot is
// served by the master at addr now. Every channel of slot sent here and not
// yet confirmed is refused (the commands still in flight get MOVED too):
// it is no longer sent, and the cluster broker moves it (takePushed).
// Redis names the slot, not the channels: a shard sends one slot a command.
func (r *Broker) onMoved(slot int, addr string) {
	r.mu.Lock()
	n := 0
	for ch, e := range r.subs.users {
		if e.pending == 0 || keySlot(ch) != slot {
			continue
		}
		wanted := e.wanted()
		r.subs.refused(ch, e)
		if wanted {
			r.addPushedLocked(ch)
			n++
		}
	}
	r.m.Subscriptions.Set(float64(r.subs.active))
	ready, active := r.checkReadyLocked()
	r.mu.Unlock()
	r.log.Info("redis pub/sub: SSUBSCRIBE answered MOVED", zap.Int("slot", slot), zap.String("to", addr), zap.Int("channels", n))
	r.shard.moved(slot, addr) // does not block or lock
	if ready {
		r.markReady(active)
	}
}

func (r *Broker) addPushedLocked(channel string) {
	if r.pushed == nil {
		r.pushed = map[string]struct{}{}
	}
	r.pushed[channel] = struct{}{}
}

// movedError returns the slot and address of a MOVED error reply.
func movedError(err error) (slot int, addr string, ok bool) {
	var re redis.Error
	if !errors.As(err, &re) {
		return 0, "", false
	}
	f := strings.Fields(re.Error())
	if len(f) != 3 || f[0] != "MOVED" {
		return 0, "", false
	}
	slot, perr := strconv.Atoi(f[1])
	if perr != nil || slot < 0 || slot >= clusterSlots {
		return 0, "", false
	}
	return slot, f[2], true
}

// checkReadyLocked reports whether the current connection just became
// ready, with the number of user subscriptions.
func (r *Broker) checkReadyLocked() (bool, int) {
	if r.sessionReady || r.staticPending > 0 || r.subs.resyncPending > 0 {
		return false, 0
	}
	r.sessionReady = true
	return true, r.subs.active
}

// markReady sets Ready and, when this ends an outage, logs it and calls the
// handler's Resync. Only the receive loop calls it.
func (r *Broker) markReady(users int) {
	r.ready.Store(true)
	r.m.Up.Set(1)
	if !r.everReady {
		r.everReady = true
		r.log.Info("redis pub/sub connected", zap.Int("user_channels", users))
		return
	}
	r.m.Reconnects.Inc()
	r.log.Info("redis pub/sub restored",
		zap.Int("user_channels", users), zap.Duration("downtime", time.Since(r.downSince)))
	if r.shard != nil {
		r.shard.restored(r.wantedKeys())
		return
	}
	r.h.Resync()
}

// health PINGs ps every HealthInterval until done is closed, and closes ps
// when the previous PING is still unanswered or a PING cannot be sent.
func (r *Broker) health(ps *redis.PubSub, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	var sent uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if sent > 0 && r.pongs.Load() < sent {
			r.log.Warn("redis pub/sub health check: PING unanswered", zap.Duration("after", r.cfg.HealthInterval))
			_ = ps.Close()
			return
		}
		sent++
		ctx, cancel := context.WithTimeout(r.guarded, r.cfg.HealthInterval)
		err := ps.Ping(ctx, strconv.FormatUint(sent, 10))
		cancel()
		if err != nil {
			// ErrClosed: the receive loop or Close closed ps, and knows.
			if !errors.Is(err, redis.ErrClosed) {
				r.log.Warn("redis pub/sub health check: PING failed", zap.Error(err))
				_ = ps.Close()
			}
			return
		}
	}
}

// flushLoop sends the subscription changes: woken by Subscribe or
// Unsubscribe, it waits FlushInterval to gather more, then flushes; it also
// wakes when a grace period ends.
func (r *Broker) flushLoop() {
	defer r.loops.Done()
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	defer grace.Stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer gather.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.wake:
		case <-grace.C:
		}
		if r.cfg.FlushInterval > 0 {
			gather.Reset(r.cfg.FlushInterval)
			select {
			case <-r.ctx.Done():
				return
			case <-gather.C:
			}
		}
		if next := r.flush(); next.IsZero() {
			grace.Stop()
		} else {
			grace.Reset(time.Until(next))
		}
	}
}

// flush sends what changed since the last flush, and returns when the next
// grace period ends (zero for none).
func (r *Broker) flush() time.Time {
	r.mu.Lock()
	r.subs.expire(time.Now())
	ps := r.ps
	sub, unsub := r.subs.plan(ps != nil)
	r.m.Subscriptions.Set(float64(r.subs.active))
	// Dropping the last unconfirmed user of a resubscription can make the
	// connection ready without a confirmation left to notice it: a PING
	// makes the receive loop look.
	kick := ps != nil && !r.sessionReady && r.staticPending == 0 && r.subs.resyncPending == 0
	next := r.subs.nextDeadline()
	r.mu.Unlock()
	if ps == nil {
		return next
	}

	err := r.send(ps, unsub, false)
	if err == nil {
		err = r.send(ps, sub, true)
	}
	if err == nil && kick {
		err = ps.Ping(r.guarded, kickPing)
	}
	if err != nil {
		// A command lost on its way invalidates the bookkeeping of this
		// connection: replace it. (When ps is already closed, so is that.)
		if !errors.Is(err, redis.ErrClosed) {
			r.log.Warn("redis pub/sub: sending subscriptions failed", zap.Error(err))
		}
		_ = ps.Close()
	} else if len(sub)+len(unsub) > 0 {
		r.log.Debug("redis pub/sub: subscriptions sent", zap.Int("subscribe", len(sub)), zap.Int("unsubscribe", len(unsub)))
	}
	return next
}

// send SUBSCRIBEs (or UNSUBSCRIBEs) the channels of keys (user ids, or
// channel names in shard mode), BatchSize channels a command.
//
// A shard's SSUBSCRIBE may only name channels of one hash slot, so a shard
// sorts its channels by slot and sends one command per slot (and per
// BatchSize channels); the commands are written back to back, without
// waiting for their replies.
func (r *Broker) send(ps *redis.PubSub, keys []string, subscribe bool) error {
	var names []string
	var slots []int
	if r.shard != nil {
		slots = make([]int, len(keys))
		for i, ch := range keys {
			slots[i] = keySlot(ch)
		}
		sort.Sort(bySlot{keys, slots})
	}
	for len(keys) > 0 {
		n := min(len(keys), r.cfg.BatchSize)
		if slots != nil {
			same := 1
			for same < n && slots[same] == slots[0] {
				same++
			}
			n = same
			slots = slots[n:]
		}
		names = names[:0]
		for _, k := range keys[:n] {
			if r.shard == nil {
				k = r.ch.User(k)
			}
			names = append(names, k)
		}
		var err error
		switch {
		case subscribe && r.shard != nil:
			err = ps.SSubscribe(r.guarded, names...)
		case subscribe:
			err = ps.Subscribe(r.guarded, names...)
		case r.shard != nil:
			err = ps.SUnsubscribe(r.guarded, names...) // never empty: that would mean all
		default:
			err = ps.Unsubscribe(r.guarded, names...) // never empty: that would mean all
		}
		if err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// wantedKeys returns the keys (user ids, or channels in shard mode) this
// broker subscribes.
func (r *Broker) wantedKeys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.subs.users))
	for k, e := range r.subs.users {
		if e.wanted() {
			out = append(out, k)
		}
	}
	return out
}

// activeSubscriptions returns the user (or shard) channels Redis has
// confirmed on the current connection.
func (r *Broker) activeSubscriptions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subs.active
}

// bySlot sorts channels by their hash slot.
type bySlot struct {
	channels []string
	slots    []int
}

func (b bySlot) Len() int           { return len(b.channels) }
func (b bySlot) Less(i, j int) bool { return b.slots[i] < b.slots[j] }
func (b bySlot) Swap(i, j int) {
	b.channels[i], b.channels[j] = b.channels[j], b.channels[i]
	b.slots[i], b.slots[j] = b.slots[j], b.slots[i]
}

// takePushed returns and forgets the channels the server dropped or
// refused (shard mode) that are still wanted and not subscribed again.
func (r *Broker) takePushed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for ch := range r.pushed {
		if e := r.subs.users[ch]; e != nil && e.wanted() && !e.sent {
			out = append(out, ch)
		}
	}
	r.pushed = nil
	return out
}

// handOver prepares the move of key to another shard. It returns the
// channel that Subscribe calls for key wait on, if the subscription is not
// active, and forgets it here: the cluster broker closes it once key is
// subscribed on the shard it moves to (nil if nobody waits). everActive
// reports whether the subscription was ever active here: if so, messages
// may be lost by the move.
func (r *Broker) handOver(key string) (waiter chan struct{}, everActive bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.subs.users[key]
	if e == nil {
		return nil, false
	}
	if e.active {
		return nil, true
	}
	w := e.ready
	e.ready = nil
	return w, e.everActive
}

// resubscribe has the flusher subscribe channel again on this connection
// and returns the channel closed once Redis confirms it (or the channel is
// dropped). It is for a channel the server dropped or refused (takePushed)
// whose slot is on this master. everActive reports whether the
// subscription was ever active here: if so, messages may have been lost.
func (r *Broker) resubscribe(channel string) (ready <-chan struct{}, everActive bool) {
	r.mu.Lock()
	e := r.subs.users[channel]
	if e == nil || !e.wanted() || r.closing {
		r.mu.Unlock()
		return fanout.Confirmed(), false
	}
	if e.active {
		r.mu.Unlock()
		return fanout.Confirmed(), true
	}
	if e.ready == nil {
		e.ready = make(chan struct{})
	}
	ready, everActive = e.ready, e.everActive
	r.subs.dirty[channel] = struct{}{}
	r.mu.Unlock()
	r.wakeFlusher()
	return ready, everActive
}
