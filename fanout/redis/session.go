package redis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
	"github.com/herald-gw/herald/internal/lockorder"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// session is one pub/sub connection to Redis and everything that keeps it
// subscribed: the connection loop (dial, receive, reconnect with backoff),
// the health check, and the flusher that turns the wanted subscriptions
// into batched commands. Its mode says what it subscribes and how (mode.go):
// a classic session (one Redis or Sentinel primary, or a cluster's
// connection for broadcasts and control) or one master's shard of a Redis
// Cluster. The brokers on top of it (Broker, Cluster) hear of its
// connection's fate through its events.
//
// A session delivers from one goroutine, its receive loop, which reads the
// connection and calls the Handler for each message in the order Redis sent
// them. subscribe and unsubscribe only record what is wanted and never wait
// for the network.
type session struct {
	client *redis.Client // owned by the caller; opens the pub/sub connection
	cfg    Config        // defaults filled; read-only
	ch     publish.Channels
	mode   mode // read-only
	log    *zap.Logger
	drops  *zap.Logger // log, sampled to one line a second
	m      *fanout.Metrics
	events events // read-only; called on the loops

	// The static subscriptions of a classic session; read-only.
	// socketPattern is empty with sharded names: a Cluster subscribes each
	// socket on its shard.
	socketPattern, exceptPattern, broadcast, control string
	statics                                          int // how many of them a connection confirms

	ctx     context.Context    // cancelled by close
	cancel  context.CancelFunc // cancels ctx
	guarded context.Context    // ctx, marked so that go-redis does not reconnect by itself
	loops   sync.WaitGroup     // the run and flush loops
	wake    chan struct{}      // capacity 1; a token means the flusher has work
	ready   atomic.Bool        // connected, and every wanted subscription confirmed
	closed  atomic.Bool        // set by close
	pongs   atomic.Uint64      // the latest health PING answered on the current connection
	frames  atomic.Uint64      // frames read from the current connection: the health check's proof of life
	ticked  atomic.Uint64      // frames at the health check's latest tick

	mu      lockorder.Mutex // rank RedisSession (docs/LOCKS.md)
	started bool            // guarded by mu
	closing bool            // guarded by mu; set by close
	pc      *pubsubConn     // guarded by mu; the current connection, nil while there is none
	// subs is keyed by what the mode subscribes: user ids (classic), or
	// channel names (shard), so that one shard serves user and socket
	// channels alike.
	subs          *subscriptions      // guarded by mu
	staticPending int                 // guarded by mu; static subscriptions not yet confirmed on ps
	pushed        map[string]struct{} // guarded by mu; shard: channels the server dropped or refused (MOVED)
	sessionReady  bool                // guarded by mu; ready was set for ps

	// Owned by the run loop (h is set by start before the loop starts).
	h         fanout.Handler
	everReady bool      // ready was set once: the next time is a recovery
	downSince time.Time // when ready was last cleared
}

// events is what a session reports to the broker on top of it. The methods
// run on the session's loops: they must not block, call the session's
// close, or take a lock the broker holds while it calls the session.
type events interface {
	// lost is called when a connection fails or cannot be made.
	lost(err error)
	// restored is called when a connection after the first is ready:
	// messages sent since the loss are gone.
	restored()
	// pushed is called when the server unsubscribed a channel that was
	// wanted (shard): its slot moved to another master.
	pushed(channel string)
	// moved is called when the server answered MOVED to an SSUBSCRIBE
	// (shard): the master at addr serves slot now, and the channels of that
	// slot sent here are not subscribed (takePushed returns them).
	moved(slot int, addr string)
}

// startErr returns why a Start may not run: a nil handler, a Start after
// Close, or a second Start; nil when it may.
func startErr(h fanout.Handler, closing, started bool) error {
	switch {
	case h == nil:
		return errors.New("fanout: Start with a nil handler")
	case closing:
		return fanout.ErrClosed
	case started:
		return errors.New("fanout: Start called twice")
	}
	return nil
}

// kickPing is a PING payload that only asks the receive loop to look at
// readiness again (health PINGs carry a number).
const kickPing = "ready?"

// newSession returns a session of mode on client, which reports to ev and
// counts in m. It does not contact Redis; start does. It adds a hook to
// client that refuses the dials go-redis's PubSub makes on its own to
// replace a broken connection, so that the session reconnects on its own
// terms (batches, backoff, events); it changes nothing else.
func newSession(client *redis.Client, cfg Config, ch publish.Channels, md mode, m *fanout.Metrics, ev events) *session {
	client.AddHook(dialGuard{})
	log := cfg.Logger.With(zap.String("node", cfg.NodeID))
	ctx, cancel := context.WithCancel(context.Background())
	r := &session{
		client: client,
		cfg:    cfg,
		ch:     ch,
		mode:   md,
		log:    log,
		drops: log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return zapcore.NewSamplerWithOptions(c, time.Second, 1, 0)
		})),
		m:       m,
		events:  ev,
		ctx:     ctx,
		cancel:  cancel,
		guarded: context.WithValue(ctx, noDialKey{}, true),
		wake:    make(chan struct{}, 1),
		subs:    newSubscriptions(cfg.UnsubscribeGrace),
	}
	r.mu.SetRank(lockorder.RedisSession)
	if !md.sharded {
		// The exception pattern, broadcast and control; and unless the
		// socket channels are sharded (a Cluster's classic session), the
		// pattern of this replica's sockets.
		r.exceptPattern, r.broadcast, r.control = ch.ExceptPattern(), ch.Broadcast(), ch.Control()
		r.statics = 3
		if !ch.Sharded() {
			r.socketPattern = ch.SocketPattern(cfg.NodeID)
			r.statics = 4
		}
	}
	return r
}

// start begins connecting and delivering to h, and returns at once: start
// does not wait for Redis. Until the pub/sub connection is up and its
// subscriptions are confirmed, ready is false; an unreachable Redis is
// retried in the background with backoff, and each failure is logged. The
// error is for a misuse: a nil handler, a second start, or start after close.
func (r *session) start(h fanout.Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := startErr(h, r.closing, r.started); err != nil {
		return err
	}
	r.started = true
	r.h = h
	r.loops.Add(2)
	go r.run()
	go r.flushLoop()
	return nil
}

// subscribe is Subscribe for a key of subs: a user id, or in shard mode a
// channel name.
func (r *session) subscribe(key string) <-chan struct{} {
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

// unsubscribe is Unsubscribe for a key of subs; without grace, the channel
// is unsubscribed at the next flush.
func (r *session) unsubscribe(key string, grace bool) {
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

// close stops the loops and closes the pub/sub connection; Redis drops its
// subscriptions with it. Nothing is delivered after close returns. It does
// not close the client, and must not be called from a Handler method.
func (r *session) close() {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.loops.Wait()
		return
	}
	r.closing = true
	r.closed.Store(true)
	pc := r.pc
	r.mu.Unlock()

	r.cancel()
	if pc != nil {
		pc.close() // ends the receive loop's read
	}
	r.loops.Wait()
	r.ready.Store(false)
	r.m.Up.Set(0)
	r.m.Subscriptions.Set(0)
}

func (r *session) wakeFlusher() { poke(r.wake) }

// run is the connection loop: connect, receive until the connection fails,
// back off, and again, until Close.
func (r *session) run() {
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
		pc, err := r.dial()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.events.lost(err)
			attempt++
			r.log.Warn("redis pub/sub connection failed", zap.Int("attempt", attempt), zap.Error(err))
			continue
		}
		attempt = 1
		err = r.serve(pc)
		if r.ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		wanted := len(r.subs.users)
		r.mu.Unlock()
		fields := []zap.Field{zap.Error(err), zap.Int("user_channels", wanted)}
		if r.frames.Load() != r.ticked.Load() && closedByServer(err) {
			fields = append(fields, zap.String("hint", outputBufferHint))
		}
		r.log.Warn("redis pub/sub connection lost", fields...)
		r.events.lost(err)
	}
}

// dial opens a pub/sub connection and sends the static subscriptions.
func (r *session) dial() (*pubsubConn, error) {
	ps := r.client.Subscribe(r.ctx) // without channels: no connection yet
	// The first command opens the connection, so it alone may dial; its
	// context keeps the connection dialled.
	open, slot := openContext(r.ctx)
	var err error
	if r.statics == 0 {
		// No static subscription (a shard): a PING opens the connection.
		err = ps.Ping(open, "open")
	} else {
		patterns := []string{r.exceptPattern}
		if r.socketPattern != "" {
			patterns = append(patterns, r.socketPattern)
		}
		err = ps.PSubscribe(open, patterns...)
		if err == nil {
			err = ps.Subscribe(r.guarded, r.broadcast, r.control)
		}
	}
	if err == nil && slot.c == nil {
		err = errNotCaptured
	}
	if err != nil {
		_ = ps.Close()
		return nil, err
	}
	return newPubsubConn(ps, slot.c, r.client.Options()), nil
}

// serve makes pc the current connection, has the flusher subscribe every
// wanted user on it, and receives from it until it fails. It returns why.
func (r *session) serve(pc *pubsubConn) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		pc.close()
		return fanout.ErrClosed
	}
	r.pc = pc
	r.staticPending = r.statics
	r.sessionReady = false
	r.subs.connected()
	r.mu.Unlock()
	r.pongs.Store(0)
	r.frames.Store(0)
	r.ticked.Store(0)
	r.wakeFlusher()

	done := make(chan struct{})
	var health sync.WaitGroup
	health.Go(func() { r.health(pc, done) })

	err := r.receive(pc.nc)

	r.mu.Lock()
	r.pc = nil
	r.sessionReady = false
	r.subs.lost()
	r.m.Subscriptions.Set(0)
	r.mu.Unlock()
	if r.ready.Swap(false) {
		r.downSince = time.Now()
		r.m.Up.Set(0)
	}
	pc.close()
	close(done)
	health.Wait()
	return err
}

func (r *session) dropped(reason, channel string, fields ...zap.Field) {
	r.m.Drop(reason)
	r.drops.Warn("dropped a pub/sub message", append(fields, zap.String("reason", reason), zap.String("channel", channel))...)
}

// onSubscription counts Redis's confirmation of a SUBSCRIBE or PSUBSCRIBE
// (kind) of channel.
func (r *session) onSubscription(kind, channel string) {
	r.mu.Lock()
	switch {
	case kind == "psubscribe" && (channel == r.socketPattern || channel == r.exceptPattern),
		kind == "subscribe" && (channel == r.broadcast || channel == r.control):
		r.staticPending--
	case kind == "sunsubscribe":
		// Only a shard SSUBSCRIBEs. Either the reply to our SUNSUBSCRIBE,
		// or the server dropping a channel whose slot it no longer serves.
		// A channel still marked sent tells them apart (a SUBSCRIBE,
		// UNSUBSCRIBE, SUBSCRIBE sequence in flight may look pushed: the
		// channel is then subscribed once more). A dropped channel is no
		// longer active here; the cluster broker re-reads the slot map and
		// either moves it to its new master or has it subscribed again here
		// (takePushed, resubscribe).
		if e := r.subs.users[channel]; e != nil && e.sent {
			e.sent = false
			r.subs.setActive(e, false)
			r.m.Subscriptions.Set(float64(r.subs.active))
			r.addPushedLocked(channel)
			r.events.pushed(channel) // does not block or lock
		}
	default:
		if key, ok := r.mode.confirmed(r.ch, kind, channel); ok {
			r.subs.confirm(key)
			r.m.Subscriptions.Set(float64(r.subs.active))
		}
	}
	ready, users := r.checkReadyLocked()
	r.mu.Unlock()
	if ready {
		r.markReady(users)
	}
}

// onMoved handles a MOVED reply to an SSUBSCRIBE of this shard: slot is
// served by the master at addr now. Every channel of slot sent here and not
// yet confirmed is refused (the commands still in flight get MOVED too):
// it is no longer sent, and the cluster broker moves it (takePushed).
// Redis names the slot, not the channels: a shard sends one slot a command.
func (r *session) onMoved(slot int, addr string) {
	r.mu.Lock()
	n := 0
	for ch, e := range r.subs.users {
		if e.pending == 0 || keyslot.Of(ch) != slot {
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
	r.events.moved(slot, addr) // does not block or lock
	if ready {
		r.markReady(active)
	}
}

func (r *session) addPushedLocked(channel string) {
	if r.pushed == nil {
		r.pushed = map[string]struct{}{}
	}
	r.pushed[channel] = struct{}{}
}

// movedText returns the slot and address of a MOVED error reply's text.
func movedText(msg string) (slot int, addr string, ok bool) {
	f := strings.Fields(msg)
	if len(f) != 3 || f[0] != "MOVED" {
		return 0, "", false
	}
	slot, perr := strconv.Atoi(f[1])
	if perr != nil || slot < 0 || slot >= keyslot.Slots {
		return 0, "", false
	}
	return slot, f[2], true
}

// checkReadyLocked reports whether the current connection just became
// ready, with the number of user subscriptions.
func (r *session) checkReadyLocked() (bool, int) {
	if r.sessionReady || r.staticPending > 0 || r.subs.resyncPending > 0 {
		return false, 0
	}
	r.sessionReady = true
	return true, r.subs.active
}

// markReady sets Ready and, when this ends an outage, logs it and calls the
// handler's Resync. Only the receive loop calls it.
func (r *session) markReady(users int) {
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
	r.events.restored()
}

// flushLoop sends the subscription changes: woken by Subscribe or
// Unsubscribe, it waits FlushInterval to gather more, then flushes; it also
// wakes when a grace period ends.
func (r *session) flushLoop() {
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
func (r *session) flush() time.Time {
	r.mu.Lock()
	r.subs.expire(time.Now())
	pc := r.pc
	sub, unsub := r.subs.plan(pc != nil)
	r.m.Subscriptions.Set(float64(r.subs.active))
	// Dropping the last unconfirmed user of a resubscription can make the
	// connection ready without a confirmation left to notice it: a PING
	// makes the receive loop look.
	kick := pc != nil && !r.sessionReady && r.staticPending == 0 && r.subs.resyncPending == 0
	next := r.subs.nextDeadline()
	r.mu.Unlock()
	if pc == nil {
		return next
	}

	err := r.send(pc, unsub, false)
	if err == nil {
		err = r.send(pc, sub, true)
	}
	if err == nil && kick {
		err = pc.command(0, "PING", kickPing)
	}
	if err != nil {
		// A command lost on its way invalidates the bookkeeping of this
		// connection: replace it. (When pc is already closed, so is that.)
		if !errors.Is(err, net.ErrClosed) {
			r.log.Warn("redis pub/sub: sending subscriptions failed", zap.Error(err))
		}
		pc.close()
	} else if len(sub)+len(unsub) > 0 {
		r.log.Debug("redis pub/sub: subscriptions sent", zap.Int("subscribe", len(sub)), zap.Int("unsubscribe", len(unsub)))
	}
	return next
}

// send SUBSCRIBEs (or UNSUBSCRIBEs) the channels of keys in the mode's
// batches (mode.batches), the commands written back to back, without
// waiting for their replies.
func (r *session) send(pc *pubsubConn, keys []string, subscribe bool) error {
	var names []string
	verb := r.mode.verb(subscribe)
	for _, batch := range r.mode.batches(keys, r.cfg.BatchSize) {
		names = names[:0]
		for _, k := range batch {
			names = append(names, r.mode.channel(r.ch, k))
		}
		if err := pc.command(0, verb, names...); err != nil {
			return err
		}
	}
	return nil
}

// wantedKeys returns the keys (user ids, or channels in shard mode) this
// broker subscribes.
func (r *session) wantedKeys() []string {
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
func (r *session) activeSubscriptions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.subs.active
}

// takePushed returns and forgets the channels the server dropped or
// refused (shard mode) that are still wanted and not subscribed again.
func (r *session) takePushed() []string {
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
func (r *session) handOver(key string) (waiter chan struct{}, everActive bool) {
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
func (r *session) resubscribe(channel string) (ready <-chan struct{}, everActive bool) {
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
