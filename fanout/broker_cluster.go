package fanout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// RedisCluster is the Broker of the multi-replica mode on a Redis Cluster
// (Redis 7 or later). User channels are "<prefix>user:{<id>}" (see
// NewShardedChannels) and travel by sharded pub/sub: the broker keeps one
// pub/sub connection per master, SSUBSCRIBEs each user on the master that
// owns the slot of its channel, batched per shard as Redis does, and
// follows the slot map: when a master fails over or a slot migrates, the
// users concerned are subscribed on their new master and their sockets get
// {"type":"resync"}. Broadcast, broadcast-except, socket and control
// messages stay on classic pub/sub, which a Redis Cluster relays to every
// node: one more connection, to any node, receives them (see the package
// documentation for the cost).
//
// Subscribe, Unsubscribe, Publish and Ready may be called from any
// goroutine. Messages are delivered from the shards' receive loops and the
// classic connection's, concurrently; within one channel, in order. Lock
// order: RedisCluster.mu before a shard's Redis.mu; the shards' callbacks
// take neither.
type RedisCluster struct {
	client *redis.ClusterClient // the caller's; PUBLISH, SPUBLISH and CLUSTER SLOTS
	cfg    RedisConfig          // defaults filled; read-only
	ch     Channels             // sharded names
	log    *zap.Logger
	m      *metrics

	classic       *Redis        // broadcast, except, socket and control; read-only
	classicClient *redis.Client // owned; dials a node of the cluster

	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup // the refresh loop and resync waiters
	kick    chan struct{}  // capacity 1: re-read the slot map now
	closed  atomic.Bool
	h       Handler       // set by Start, read-only after
	nodesMu sync.Mutex    // guards nodes
	nodes   []string      // every node's address from the last slot map, for the classic dialer
	nextRR  atomic.Uint32 // rotates the classic dialer's first choice

	mu      sync.Mutex
	started bool                    // guarded by mu
	closing bool                    // guarded by mu
	slots   []slotRange             // guarded by mu; sorted; empty until the first read
	shards  map[string]*shard       // guarded by mu; by master address
	users   map[string]*clusterUser // guarded by mu; users with Subscribe calls outstanding
	unhomed int                     // guarded by mu; users whose slot had no master when subscribed
}

var _ Broker = (*RedisCluster)(nil)

// slotRange is one line of CLUSTER SLOTS: slots start..end are served by
// the master at addr.
type slotRange struct {
	start, end int
	addr       string
}

// shard is the pub/sub connection to one master.
type shard struct {
	addr   string
	client *redis.Client // owned
	b      *Redis        // sharded mode
	users  int           // guarded by RedisCluster.mu; users homed here
}

// movedUser is a user refresh homed on a new shard.
type movedUser struct {
	user    string
	ready   <-chan struct{} // closed once subscribed on the new shard
	resync  bool            // it was homed elsewhere: messages may be lost
	waiting chan struct{}   // nil, or Subscribe's channel to close once ready
}

type clusterUser struct {
	refs  int
	shard *shard // nil until the slot map is known
	// waiting is the channel handed to Subscribe calls made before the
	// slot map was known; closed once the user is homed and subscribed.
	waiting chan struct{}
}

// resyncPayload is what a socket whose messages may have been lost receives.
const resyncPayload = `{"type":"resync"}`

// NewRedisCluster returns a broker on a Redis Cluster through client, whose
// seed addresses, password and TLS settings it also uses to open its own
// pub/sub connections. It does not contact Redis; Start does. The client
// stays the caller's, who closes it after Close.
func NewRedisCluster(client *redis.ClusterClient, cfg RedisConfig) (*RedisCluster, error) {
	if client == nil {
		return nil, errors.New("fanout: NewRedisCluster with a nil client")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opt := client.Options()
	ctx, cancel := context.WithCancel(context.Background())
	r := &RedisCluster{
		client: client,
		cfg:    cfg,
		ch:     NewShardedChannels(cfg.Prefix),
		log:    cfg.Logger.With(zap.String("node", cfg.NodeID)),
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		nodes:  slices.Clone(opt.Addrs),
		shards: make(map[string]*shard),
		users:  make(map[string]*clusterUser),
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("fanout: register metrics: %w", err)
	}
	r.m = m
	copt := r.nodeOptions("cluster")
	copt.Dialer = r.dialAnyNode
	r.classicClient = redis.NewClient(copt)
	classicCfg := cfg
	classicCfg.Logger = cfg.Logger.Named("classic")
	r.classic, err = newRedis(r.classicClient, classicCfg, r.ch, nil)
	if err != nil {
		cancel()
		_ = r.classicClient.Close()
		return nil, err
	}
	// The cluster broker exports up and subscriptions for the whole.
	r.classic.m.up = prometheus.NewGauge(prometheus.GaugeOpts{Name: "classic_up"})
	r.classic.m.subscriptions = prometheus.NewGauge(prometheus.GaugeOpts{Name: "classic_subscriptions"})
	return r, nil
}

// nodeOptions returns the options of a client for one node at addr, with
// the cluster client's credentials and TLS.
func (r *RedisCluster) nodeOptions(addr string) *redis.Options {
	opt := r.client.Options()
	return &redis.Options{
		Addr:                  addr,
		Username:              opt.Username,
		Password:              opt.Password,
		TLSConfig:             opt.TLSConfig,
		Protocol:              opt.Protocol,
		DialTimeout:           opt.DialTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	}
}

// dialAnyNode is the classic connection's dialer: the first node of the
// last slot map (or the seeds) that accepts, starting at a rotating index so
// that a dead node is not tried first every time.
func (r *RedisCluster) dialAnyNode(ctx context.Context, network, _ string) (net.Conn, error) {
	r.nodesMu.Lock()
	nodes := slices.Clone(r.nodes)
	r.nodesMu.Unlock()
	if len(nodes) == 0 {
		return nil, errors.New("fanout: no cluster node known")
	}
	start := int(r.nextRR.Add(1))
	var errs []error
	d := net.Dialer{Timeout: r.client.Options().DialTimeout}
	for i := range nodes {
		addr := nodes[(start+i)%len(nodes)]
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			if tc := r.client.Options().TLSConfig; tc != nil {
				tc = tc.Clone()
				if tc.ServerName == "" {
					tc.ServerName, _, _ = net.SplitHostPort(addr)
				}
				return tls.Client(c, tc), nil
			}
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// NodeID returns the replica's node id.
func (r *RedisCluster) NodeID() string { return r.cfg.NodeID }

// Start begins following the cluster and delivering to h, and returns at
// once. The error is for a misuse: a nil handler, a second Start, or Start
// after Close.
func (r *RedisCluster) Start(h Handler) error {
	if h == nil {
		return errors.New("fanout: Start with a nil handler")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closing:
		return ErrClosed
	case r.started:
		return errors.New("fanout: Start called twice")
	}
	r.started = true
	r.h = h
	if err := r.classic.Start(h); err != nil {
		return err
	}
	r.loops.Add(1)
	go r.refreshLoop()
	return nil
}

// Subscribe records that userID is wanted and subscribes its channel on
// the master that owns it; see Redis.Subscribe.
func (r *RedisCluster) Subscribe(userID string) <-chan struct{} {
	if userID == "" {
		r.log.Error("Subscribe with an empty user id")
		return closedChan
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return closedChan
	}
	u := r.users[userID]
	if u == nil {
		u = &clusterUser{}
		r.users[userID] = u
		u.shard = r.ownerLocked(userID)
		if u.shard != nil {
			u.shard.users++
		} else {
			r.unhomed++
		}
	}
	u.refs++
	if u.shard == nil {
		if u.waiting == nil {
			u.waiting = make(chan struct{})
		}
		return u.waiting
	}
	return u.shard.b.Subscribe(userID)
}

// Unsubscribe undoes one Subscribe of userID.
func (r *RedisCluster) Unsubscribe(userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return
	}
	u := r.users[userID]
	if u == nil {
		r.log.Warn("Unsubscribe without a Subscribe", zap.String("user", userID))
		return
	}
	u.refs--
	if u.shard != nil {
		u.shard.b.Unsubscribe(userID)
	}
	if u.refs == 0 {
		if u.shard != nil {
			u.shard.users--
		} else {
			r.unhomed--
		}
		delete(r.users, userID)
	}
}

// Publish sends payload to to: SPUBLISH on a user channel, PUBLISH on the
// others.
func (r *RedisCluster) Publish(ctx context.Context, to Target, payload []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	name, err := r.ch.Name(to)
	if err != nil {
		return err
	}
	if to.Kind == ToUser {
		err = r.client.SPublish(ctx, name, payload).Err()
	} else {
		err = r.client.Publish(ctx, name, payload).Err()
	}
	if err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", name, err)
	}
	return nil
}

// PublishControl publishes c as JSON on the control channel.
func (r *RedisCluster) PublishControl(ctx context.Context, c Control) error {
	if r.closed.Load() {
		return ErrClosed
	}
	payload, err := encodeControl(c)
	if err != nil {
		return err
	}
	name := r.ch.Control()
	if err := r.client.Publish(ctx, name, payload).Err(); err != nil {
		return fmt.Errorf("fanout: publish to %s: %w", name, err)
	}
	return nil
}

// Ready reports whether the slot map is known and the classic connection
// (broadcast, control) is ready. A shard that is down does not make the
// replica unready: the users of the other shards can still connect, and
// a handshake of a user on that shard fails on its own, when its
// subscription is not confirmed in time. herald_broker_up is 1 only when
// every shard holding users is ready too (AllShardsReady).
func (r *RedisCluster) Ready() bool {
	if !r.classic.Ready() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots) > 0
}

// AllShardsReady reports whether Ready holds and every shard that holds
// users has its connection up and its subscriptions confirmed.
func (r *RedisCluster) AllShardsReady() bool {
	if !r.Ready() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.shards {
		if s.users > 0 && !s.b.Ready() {
			return false
		}
	}
	return true
}

// Close stops every connection. Nothing is delivered after it returns. It
// does not close the client. It returns nil.
func (r *RedisCluster) Close() error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		r.loops.Wait()
		return nil
	}
	r.closing = true
	r.closed.Store(true)
	shards := r.shards
	r.shards = map[string]*shard{}
	r.mu.Unlock()

	r.cancel()
	r.loops.Wait()
	_ = r.classic.Close()
	_ = r.classicClient.Close()
	for _, s := range shards {
		_ = s.b.Close()
		_ = s.client.Close()
	}
	r.m.up.Set(0)
	r.m.subscriptions.Set(0)
	return nil
}

// kickRefresh asks the refresh loop to read the slot map now. It never
// blocks.
func (r *RedisCluster) kickRefresh() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// refreshLoop reads the slot map at once, then every RefreshInterval and
// when kicked (at most every RefreshInterval/4), and updates the gauges.
func (r *RedisCluster) refreshLoop() {
	defer r.loops.Done()
	t := time.NewTicker(r.cfg.RefreshInterval)
	defer t.Stop()
	for {
		if err := r.refresh(); err != nil && r.ctx.Err() == nil {
			r.log.Warn("redis cluster: reading the slot map failed", zap.Error(err))
		}
		r.updateGauges()
		if !sleepCtx(r.ctx, r.cfg.RefreshInterval/4) {
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

func (r *RedisCluster) updateGauges() {
	ready := r.AllShardsReady()
	r.mu.Lock()
	shards := make([]*shard, 0, len(r.shards))
	for _, s := range r.shards {
		shards = append(shards, s)
	}
	r.mu.Unlock()
	active := 0
	for _, s := range shards {
		active += s.b.activeSubscriptions()
	}
	r.m.subscriptions.Set(float64(active))
	if ready {
		r.m.up.Set(1)
	} else {
		r.m.up.Set(0)
	}
}

// refresh reads CLUSTER SLOTS and moves every user whose slot changed
// master to its new shard; their sockets get a resync once subscribed
// there. Shards left without users and no longer masters are closed.
func (r *RedisCluster) refresh() error {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	infos, err := r.client.ClusterSlots(ctx).Result()
	if err != nil {
		return err
	}
	var slots []slotRange
	nodeSet := map[string]bool{}
	for _, in := range infos {
		if len(in.Nodes) == 0 || in.Nodes[0].Addr == "" {
			continue
		}
		slots = append(slots, slotRange{int(in.Start), int(in.End), in.Nodes[0].Addr})
		for _, n := range in.Nodes {
			nodeSet[n.Addr] = true
		}
	}
	if len(slots) == 0 {
		return errors.New("CLUSTER SLOTS: no slot served")
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].start < slots[j].start })
	nodes := make([]string, 0, len(nodeSet))
	for a := range nodeSet {
		nodes = append(nodes, a)
	}
	sort.Strings(nodes)
	r.nodesMu.Lock()
	r.nodes = nodes
	r.nodesMu.Unlock()

	var todo []movedUser
	var stale []*shard
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return nil
	}
	changed := !slices.Equal(slots, r.slots)
	r.slots = slots
	if changed || r.unhomed > 0 {
		for id, u := range r.users {
			owner := r.ownerLocked(id)
			if owner == u.shard || owner == nil {
				continue
			}
			old := u.shard
			var ready <-chan struct{}
			for range u.refs {
				if old != nil {
					old.b.Unsubscribe(id)
				}
				ready = owner.b.Subscribe(id)
			}
			if old != nil {
				old.users--
			} else {
				r.unhomed--
			}
			owner.users++
			u.shard = owner
			todo = append(todo, movedUser{user: id, ready: ready, resync: old != nil, waiting: u.waiting})
			u.waiting = nil
		}
		masters := map[string]bool{}
		for _, s := range slots {
			masters[s.addr] = true
		}
		for addr, s := range r.shards {
			if s.users == 0 && !masters[addr] {
				delete(r.shards, addr)
				stale = append(stale, s)
			}
		}
	}
	// Users the server dropped whose slot stayed on their master (a slot
	// that left and came back, or a stale map): subscribe them again.
	for _, sh := range r.shards {
		for _, id := range sh.b.takePushed() {
			if u := r.users[id]; u != nil && u.shard == sh {
				todo = append(todo, movedUser{user: id, ready: sh.b.resubscribe(id), resync: true})
			}
		}
	}
	if len(todo) > 0 {
		r.loops.Add(1)
		go r.afterMove(todo)
	}
	r.mu.Unlock()
	for _, s := range stale {
		_ = s.b.Close()
		_ = s.client.Close()
		r.log.Info("redis cluster: shard connection closed", zap.String("addr", s.addr))
	}
	if len(todo) > 0 {
		r.log.Info("redis cluster: users moved to a new shard or subscribed again", zap.Int("users", len(todo)))
	}
	return nil
}

// afterMove waits for each moved user's new subscription, then sends its
// sockets a resync (or releases the Subscribe calls that waited for the
// first slot map).
func (r *RedisCluster) afterMove(todo []movedUser) {
	defer r.loops.Done()
	for _, mv := range todo {
		select {
		case <-mv.ready:
		case <-r.ctx.Done():
			return
		}
		if mv.waiting != nil {
			close(mv.waiting)
		}
		if mv.resync {
			r.h.Deliver(User(mv.user), []byte(resyncPayload))
		}
	}
}

// ownerLocked returns the shard of the master that owns userID's channel,
// creating it; nil while the slot map is unknown or the slot unserved.
func (r *RedisCluster) ownerLocked(userID string) *shard {
	slot := keySlot(r.ch.User(userID))
	i := sort.Search(len(r.slots), func(i int) bool { return r.slots[i].end >= slot })
	if i == len(r.slots) || r.slots[i].start > slot {
		return nil
	}
	addr := r.slots[i].addr
	if s := r.shards[addr]; s != nil {
		return s
	}
	s, err := r.newShardLocked(addr)
	if err != nil {
		r.log.Error("redis cluster: shard connection", zap.String("addr", addr), zap.Error(err))
		return nil
	}
	r.shards[addr] = s
	return s
}

func (r *RedisCluster) newShardLocked(addr string) (*shard, error) {
	client := redis.NewClient(r.nodeOptions(addr))
	cfg := r.cfg
	cfg.Logger = r.cfg.Logger.Named("shard").With(zap.String("shard", addr))
	s := &shard{addr: addr, client: client}
	hooks := &shardHooks{
		lost:   func(error) { r.kickRefresh() },
		pushed: func(string) { r.kickRefresh() },
		restored: func(users []string) {
			for _, u := range users {
				r.h.Deliver(User(u), []byte(resyncPayload))
			}
		},
	}
	b, err := newRedis(client, cfg, r.ch, hooks)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	if err := b.Start(shardHandler{r}); err != nil {
		_ = client.Close()
		return nil, err
	}
	s.b = b
	return s, nil
}

// shardHandler receives what a shard delivers: user messages only.
type shardHandler struct{ r *RedisCluster }

func (h shardHandler) Deliver(to Target, payload []byte) { h.r.h.Deliver(to, payload) }
func (h shardHandler) Control(c Control)                 { h.r.h.Control(c) }
func (h shardHandler) Resync()                           {}
