package redis

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

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
	"github.com/herald-gw/herald/internal/lockorder"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Cluster is the fanout.Broker of the multi-replica mode on a Redis Cluster
// (Redis 7 or later). User and socket channels are "<prefix>user:{<id>}"
// and "<prefix>socket:{<id>}" (see NewShardedChannels) and travel by
// sharded pub/sub: the broker keeps one pub/sub connection per master,
// SSUBSCRIBEs each user's channel and each local socket's (SocketSubscriber)
// on the master that owns its slot, batched per shard as Redis does, and
// follows the slot map: when a master fails over, a slot migrates or an
// SSUBSCRIBE gets MOVED, the channels concerned are subscribed on their new
// master and their sockets get {"type":"resync"}. Broadcast,
// broadcast-except and control messages stay on classic pub/sub, which a
// Redis Cluster relays to every node: one more connection, to any node,
// receives them (see the package documentation for the cost).
//
// Subscribe, Unsubscribe, Publish and Ready may be called from any
// goroutine. Messages are delivered from the shards' receive loops and the
// classic connection's, concurrently; within one channel, in order. Lock
// order: Cluster.mu before a shard session's mu (docs/LOCKS.md); the shards' callbacks
// take neither.
type Cluster struct {
	client *redis.ClusterClient // the caller's; PUBLISH, SPUBLISH and CLUSTER SLOTS
	cfg    Config               // defaults filled; read-only
	ch     publish.Channels     // sharded names
	log    *zap.Logger
	m      *fanout.Metrics

	classic       *Broker       // broadcast, except and control; read-only
	classicClient *redis.Client // owned; dials a node of the cluster

	ctx     context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup // the refresh loop and resync waiters
	kick    chan struct{}  // capacity 1: re-read the slot map now
	moves   chan slotRange // MOVED replies of the shards, for the refresh loop
	closed  atomic.Bool
	h       fanout.Handler // set by Start, read-only after
	nodesMu sync.Mutex     // guards nodes
	nodes   []string       // every node's address from the last slot map, for the classic dialer
	nextRR  atomic.Uint32  // rotates the classic dialer's first choice

	mu      lockorder.Mutex   // rank RedisCluster (docs/LOCKS.md)
	started bool              // guarded by mu
	closing bool              // guarded by mu
	slots   []slotRange       // guarded by mu; sorted; empty until the first read
	shards  map[string]*shard // guarded by mu; by master address
	// chans holds the user and socket channels with Subscribe calls
	// outstanding, by hash slot and name: a MOVED reply concerns one slot.
	chans   map[int]map[string]*clusterChan // guarded by mu
	unhomed int                             // guarded by mu; channels whose slot had no master when subscribed
}

var _ fanout.SocketSubscriber = (*Cluster)(nil)

var _ fanout.Broker = (*Cluster)(nil)

// shard is the pub/sub session to one master (shardMode, keyed by channel
// name). It hears its session's events for the Cluster.
type shard struct {
	r      *Cluster
	addr   string
	client *redis.Client // owned
	sess   *session      // read-only after newShardLocked
	chans  int           // guarded by Cluster.mu; channels homed here
}

// movedChan is a channel homed on a new shard.
type movedChan struct {
	channel string
	c       *clusterChan    // the channel's entry when it moved
	ready   <-chan struct{} // closed once subscribed on the new shard, or dropped there
	resync  bool            // it was active elsewhere: messages may be lost
	waiting chan struct{}   // nil, or Subscribe's channel to close once ready
}

// clusterChan is a user's or a socket's channel.
type clusterChan struct {
	refs  int
	shard *shard // nil until the slot map is known
	// waiting is the channel handed to Subscribe calls made before the
	// slot map was known; closed once the channel is homed and subscribed.
	waiting chan struct{}
}

// resyncPayload is what a socket whose messages may have been lost receives.
const resyncPayload = `{"type":"resync"}`

// NewCluster returns a broker on a Redis Cluster through client, whose
// seed addresses, password and TLS settings it also uses to open its own
// pub/sub connections. It does not contact Redis; Start does. The client
// stays the caller's, who closes it after Close.
func NewCluster(client *redis.ClusterClient, cfg Config) (*Cluster, error) {
	if client == nil {
		return nil, errors.New("fanout: NewRedisCluster with a nil client")
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opt := client.Options()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Cluster{
		client: client,
		cfg:    cfg,
		ch:     publish.NewShardedChannels(cfg.Prefix),
		log:    cfg.Logger.With(zap.String("node", cfg.NodeID)),
		ctx:    ctx,
		cancel: cancel,
		kick:   make(chan struct{}, 1),
		moves:  make(chan slotRange, 64),
		nodes:  slices.Clone(opt.Addrs),
		shards: make(map[string]*shard),
		chans:  make(map[int]map[string]*clusterChan),
	}
	r.mu.SetRank(lockorder.RedisCluster)
	m, err := fanout.NewMetrics(cfg.Registerer)
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
	r.classic = newBroker(r.classicClient, classicCfg, r.ch, partMetrics(m, "classic"))
	return r, nil
}

// nodeOptions returns the options of a client for one node at addr, with
// the cluster client's credentials and TLS.
func (r *Cluster) nodeOptions(addr string) *redis.Options {
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
func (r *Cluster) dialAnyNode(ctx context.Context, network, _ string) (net.Conn, error) {
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
func (r *Cluster) NodeID() string { return r.cfg.NodeID }

// Start begins following the cluster and delivering to h, and returns at
// once. The error is for a misuse: a nil handler, a second Start, or Start
// after Close.
func (r *Cluster) Start(h fanout.Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := startErr(h, r.closing, r.started); err != nil {
		return err
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
func (r *Cluster) Subscribe(userID string) <-chan struct{} {
	if userID == "" {
		r.log.Error("Subscribe with an empty user id")
		return fanout.Confirmed()
	}
	return r.subscribe(r.ch.User(userID))
}

// Unsubscribe undoes one Subscribe of userID, after the grace period.
func (r *Cluster) Unsubscribe(userID string) { r.unsubscribe(r.ch.User(userID), true) }

// SubscribeSocket subscribes the channel of one local socket on the master
// that owns it; the returned channel is closed once the subscription is
// active. Calls are balanced by UnsubscribeSocket, once per socket.
func (r *Cluster) SubscribeSocket(socketID string) <-chan struct{} {
	if socketID == "" {
		r.log.Error("SubscribeSocket with an empty socket id")
		return fanout.Confirmed()
	}
	return r.subscribe(r.ch.Socket(socketID))
}

// UnsubscribeSocket drops the socket's channel at the next flush: a socket
// id is never reused, so no grace period.
func (r *Cluster) UnsubscribeSocket(socketID string) {
	r.unsubscribe(r.ch.Socket(socketID), false)
}

func (r *Cluster) subscribe(channel string) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return fanout.Confirmed()
	}
	slot := keyslot.Of(channel)
	c := r.chans[slot][channel]
	if c == nil {
		c = &clusterChan{}
		if r.chans[slot] == nil {
			r.chans[slot] = make(map[string]*clusterChan)
		}
		r.chans[slot][channel] = c
		c.shard = r.ownerLocked(slot)
		if c.shard != nil {
			c.shard.chans++
		} else {
			r.unhomed++
		}
	}
	c.refs++
	if c.shard == nil {
		if c.waiting == nil {
			c.waiting = make(chan struct{})
		}
		return c.waiting
	}
	return c.shard.sess.subscribe(channel)
}

func (r *Cluster) unsubscribe(channel string, grace bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return
	}
	slot := keyslot.Of(channel)
	c := r.chans[slot][channel]
	if c == nil {
		r.log.Warn("Unsubscribe without a Subscribe", zap.String("channel", channel))
		return
	}
	c.refs--
	if c.shard != nil {
		c.shard.sess.unsubscribe(channel, grace)
	}
	if c.refs == 0 {
		if c.shard != nil {
			c.shard.chans--
		} else {
			r.unhomed--
		}
		delete(r.chans[slot], channel)
		if len(r.chans[slot]) == 0 {
			delete(r.chans, slot)
		}
	}
}

// Publish sends payload to to: SPUBLISH on a user or socket channel,
// PUBLISH on the others.
func (r *Cluster) Publish(ctx context.Context, to publish.Target, payload []byte) error {
	if r.closed.Load() {
		return fanout.ErrClosed
	}
	return publishTo(ctx, r.client, r.ch, to, payload)
}

// PublishControl publishes c as JSON on the control channel.
func (r *Cluster) PublishControl(ctx context.Context, c publish.Control) error {
	if r.closed.Load() {
		return fanout.ErrClosed
	}
	return publishControl(ctx, r.client, r.ch, c)
}

// Ready reports whether the slot map is known and the classic connection
// (broadcast, control) is ready. A shard that is down does not make the
// replica unready: the users of the other shards can still connect, and
// a handshake whose user or socket channel is on that shard fails on its
// own, when its subscription is not confirmed in time. herald_broker_up is
// 1 only when every shard holding channels is ready too (AllShardsReady).
func (r *Cluster) Ready() bool {
	if !r.classic.Ready() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.slots) > 0
}

// AllShardsReady reports whether Ready holds and every shard that holds
// channels has its connection up and its subscriptions confirmed.
func (r *Cluster) AllShardsReady() bool {
	if !r.Ready() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.shards {
		if s.chans > 0 && !s.sess.ready.Load() {
			return false
		}
	}
	return true
}

// Close stops every connection. Nothing is delivered after it returns. It
// does not close the client. It returns nil.
func (r *Cluster) Close() error {
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
		s.sess.close()
		_ = s.client.Close()
	}
	r.m.Up.Set(0)
	r.m.Subscriptions.Set(0)
	return nil
}

// kickRefresh asks the refresh loop to read the slot map now. It never
// blocks.
func (r *Cluster) kickRefresh() { poke(r.kick) }

// refreshLoop reads the slot map at once, then every RefreshInterval and
// when kicked (at most every RefreshInterval/4), and updates the gauges. A
// MOVED reply names the slot's new master itself: the loop applies it at
// once, between reads (applyMoved).
func (r *Cluster) refreshLoop() {
	defer r.loops.Done()
	t := time.NewTicker(r.cfg.RefreshInterval)
	defer t.Stop()
	for {
		if err := r.refresh(); err != nil && r.ctx.Err() == nil {
			r.log.Warn("redis cluster: reading the slot map failed", zap.Error(err))
		}
		r.updateGauges()
		if !r.waitRefresh(t) {
			return
		}
	}
}

// waitRefresh waits until the next read of the slot map is due: a tick or
// a kick, once RefreshInterval/4 has passed since the last read. It applies
// MOVED replies meanwhile, and returns false once the broker is closed.
func (r *Cluster) waitRefresh(t *time.Ticker) bool {
	throttle := time.NewTimer(r.cfg.RefreshInterval / 4)
	defer throttle.Stop()
	var kick <-chan struct{}
	var tick <-chan time.Time // nil while throttled
	for {
		select {
		case <-r.ctx.Done():
			return false
		case mv := <-r.moves:
			r.applyMoved(mv.start, mv.addr)
		case <-throttle.C:
			kick, tick = r.kick, t.C
		case <-kick:
			return true
		case <-tick:
			return true
		}
	}
}

func (r *Cluster) updateGauges() {
	ready := r.AllShardsReady()
	r.mu.Lock()
	shards := make([]*shard, 0, len(r.shards))
	for _, s := range r.shards {
		shards = append(shards, s)
	}
	r.mu.Unlock()
	active := 0
	for _, s := range shards {
		active += s.sess.activeSubscriptions()
	}
	r.m.Subscriptions.Set(float64(active))
	if ready {
		r.m.Up.Set(1)
	} else {
		r.m.Up.Set(0)
	}
}

// refresh reads CLUSTER SLOTS and moves every channel whose slot changed
// master to its new shard; their sockets get a resync once subscribed
// there. Shards left without channels and no longer masters are closed.
func (r *Cluster) refresh() error {
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

	var stale []*shard
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return nil
	}
	changed := !slices.Equal(slots, r.slots)
	r.slots = slots
	scope := noSlot // only the channels the shards report dropped or refused
	if changed || r.unhomed > 0 {
		scope = allSlots
	}
	moved := r.rehomeLocked(scope)
	if changed || r.unhomed > 0 {
		masters := map[string]bool{}
		for _, s := range slots {
			masters[s.addr] = true
		}
		for addr, s := range r.shards {
			if s.chans == 0 && !masters[addr] {
				delete(r.shards, addr)
				stale = append(stale, s)
			}
		}
	}
	r.mu.Unlock()
	for _, s := range stale {
		s.sess.close()
		_ = s.client.Close()
		r.log.Info("redis cluster: shard connection closed", zap.String("addr", s.addr))
	}
	if moved > 0 {
		r.log.Info("redis cluster: channels moved to a new shard or subscribed again", zap.Int("channels", moved))
	}
	return nil
}

// applyMoved follows a shard's MOVED reply: slot is served by the master at
// addr. It patches the slot map and moves the slot's channels there, without
// waiting for the next read, which it asks for: the map is stale.
func (r *Cluster) applyMoved(slot int, addr string) {
	r.mu.Lock()
	if r.closing || len(r.slots) == 0 {
		r.mu.Unlock()
		return
	}
	r.slots = withOwner(r.slots, slot, addr)
	moved := r.rehomeLocked(slot)
	r.mu.Unlock()
	r.log.Info("redis cluster: followed MOVED", zap.Int("slot", slot), zap.String("addr", addr), zap.Int("channels", moved))
	r.kickRefresh()
}

// Scopes of rehomeLocked besides a slot.
const (
	allSlots = -1
	noSlot   = -2
)

// rehomeLocked moves the channels whose slot the map gives to another
// master to that master's shard: the channels of every slot for allSlots,
// of one slot, or none for noSlot. In every case it subscribes again the
// channels the shards report dropped or refused whose slot stayed. It
// returns how many channels it moved or resubscribed; a goroutine resyncs
// their sockets once subscribed.
func (r *Cluster) rehomeLocked(scope int) int {
	var todo []movedChan
	from := map[*shard]bool{} // the shards channels moved off
	switch scope {
	case noSlot:
	case allSlots:
		for slot, chans := range r.chans {
			todo = r.moveSlotLocked(slot, chans, todo, from)
		}
	default:
		todo = r.moveSlotLocked(scope, r.chans[scope], todo, from)
	}
	r.countMovesLocked(from)
	// Channels the server dropped or refused whose slot stayed on their
	// master (a slot that left and came back, or a stale map): subscribe
	// them again.
	for _, sh := range r.shards {
		for _, name := range sh.sess.takePushed() {
			if c := r.chans[keyslot.Of(name)][name]; c != nil && c.shard == sh {
				ready, wasActive := sh.sess.resubscribe(name)
				todo = append(todo, movedChan{channel: name, c: c, ready: ready, resync: wasActive})
			}
		}
	}
	if len(todo) > 0 {
		r.loops.Add(1)
		go r.afterMove(todo)
	}
	return len(todo)
}

// moveSlotLocked moves the channels of slot, chans, to the shard of the
// slot's master if they are homed elsewhere, and appends them to todo.
func (r *Cluster) moveSlotLocked(slot int, chans map[string]*clusterChan, todo []movedChan, from map[*shard]bool) []movedChan {
	if len(chans) == 0 {
		return todo
	}
	owner := r.ownerLocked(slot)
	if owner == nil {
		return todo
	}
	for name, c := range chans {
		if c.shard == owner {
			continue
		}
		old := c.shard
		waiting := c.waiting // Subscribe calls made before the first map
		wasActive := false   // nothing to lose for a channel never active
		if old != nil {
			// Or made while the channel was on its old shard, and not
			// yet active there.
			waiting, wasActive = old.sess.handOver(name)
		}
		var ready <-chan struct{}
		for range c.refs {
			if old != nil {
				old.sess.unsubscribe(name, false) // no longer served there
			}
			ready = owner.sess.subscribe(name)
		}
		if old != nil {
			old.chans--
			from[old] = true
		} else {
			r.unhomed--
		}
		owner.chans++
		c.shard = owner
		c.waiting = nil
		todo = append(todo, movedChan{channel: name, c: c, ready: ready, resync: wasActive, waiting: waiting})
	}
	return todo
}

// countMovesLocked counts, once per shard that channels moved off, a move
// by its reason: "failover" when that shard's connection is down (its
// master died; the channels went to the promoted replica), which is also
// a reconnect of the broker, or "migration" when it is up (the slots moved
// to another master).
func (r *Cluster) countMovesLocked(from map[*shard]bool) {
	for sh := range from {
		lost := !sh.sess.ready.Load()
		r.m.ShardMoved(lost)
		if !lost {
			continue
		}
		r.log.Warn("redis cluster: channels moved off a lost shard", zap.String("shard", sh.addr))
	}
}

// afterMoveSweep bounds how long one moved channel whose subscription is
// slow (its master is down, or it is refused and moves again) holds back
// the others of its batch: they are looked at again this often.
const afterMoveSweep = 100 * time.Millisecond

// afterMove waits for each moved channel's new subscription, then sends its
// sockets a resync (and releases the Subscribe calls that waited for it).
// The channels are done as each becomes ready, in any order: it sleeps
// until the first one left is ready, or afterMoveSweep has passed, and then
// looks at them all.
func (r *Cluster) afterMove(todo []movedChan) {
	defer r.loops.Done()
	sweep := time.NewTicker(afterMoveSweep)
	defer sweep.Stop()
	for {
		left := todo[:0]
		for _, mv := range todo {
			select {
			case <-mv.ready:
				r.moveDone(mv)
			default:
				left = append(left, mv)
			}
		}
		clear(todo[len(left):]) // let the done channels go
		todo = left
		if len(todo) == 0 {
			return
		}
		select {
		case <-todo[0].ready:
		case <-sweep.C:
		case <-r.ctx.Done():
			return
		}
	}
}

// moveDone releases the Subscribe calls that waited for a moved channel,
// and resyncs its sockets if messages may have been lost. A channel
// unsubscribed meanwhile (its ready closed because its entry was dropped)
// has no sockets left to resync.
func (r *Cluster) moveDone(mv movedChan) {
	if mv.waiting != nil {
		close(mv.waiting)
	}
	if !mv.resync {
		return
	}
	r.mu.Lock()
	live := r.chans[keyslot.Of(mv.channel)][mv.channel] == mv.c
	r.mu.Unlock()
	if live {
		r.resync(mv.channel)
	}
}

// resync tells the sockets of a user or socket channel that messages may
// have been lost.
func (r *Cluster) resync(channel string) {
	to, ok := r.ch.Parse(channel)
	if !ok {
		return
	}
	if tr, ok := r.h.(fanout.TargetResyncer); ok {
		tr.ResyncTarget(to)
		return
	}
	r.h.Deliver(to, []byte(resyncPayload))
}

// ownerLocked returns the shard of the master that owns slot, creating
// it; nil while the slot map is unknown or the slot unserved.
func (r *Cluster) ownerLocked(slot int) *shard {
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

func (r *Cluster) newShardLocked(addr string) (*shard, error) {
	client := redis.NewClient(r.nodeOptions(addr))
	cfg := r.cfg
	cfg.Logger = r.cfg.Logger.Named("shard").With(zap.String("shard", addr))
	s := &shard{r: r, addr: addr, client: client}
	s.sess = newSession(client, cfg, r.ch, shardMode, partMetrics(r.m, "shard"), s)
	if err := s.sess.start(shardHandler{r}); err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// The shard session's events. A lost connection or a channel the server
// dropped means the slot map may have changed: read it again. A MOVED
// reply names the slot's new master: the refresh loop applies it at once.
// A restored connection lost the messages of its channels: resync them.
func (s *shard) lost(error)    { s.r.kickRefresh() }
func (s *shard) pushed(string) { s.r.kickRefresh() }
func (s *shard) moved(slot int, addr string) {
	select {
	case s.r.moves <- slotRange{start: slot, end: slot, addr: addr}:
	default: // the loop is behind: a full read of the map will do
		s.r.kickRefresh()
	}
}
func (s *shard) restored() {
	for _, ch := range s.sess.wantedKeys() {
		s.r.resync(ch)
	}
}

// shardHandler receives what a shard delivers: user and socket messages.
type shardHandler struct{ r *Cluster }

func (h shardHandler) Deliver(to publish.Target, payload []byte) { h.r.h.Deliver(to, payload) }
func (h shardHandler) Control(c publish.Control)                 { h.r.h.Control(c) }
func (h shardHandler) Resync()                                   {}

// CheckUserID implements fanout.UserIDChecker: see
// publish.Channels.CheckUserID.
func (r *Cluster) CheckUserID(userID string) error { return r.ch.CheckUserID(userID) }
