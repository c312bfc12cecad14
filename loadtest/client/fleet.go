package client

import (
	"context"
	"errors"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fleet is one worker's share of the run's sockets: its users whole, so
// that one publisher numbers each user's messages. It connects them, keeps
// them connected as the close codes say, and measures what they receive.
// The scenarios drive it one command at a time (the command loop owns the
// phase: ResetTallies, Collect); its methods are safe for concurrent use
// unless their name ends in Locked.
type Fleet struct {
	pl      *Plan
	pollers []*poller
	socks   []*Socket
	users   []*User
	dial    *dialer
	rdb     *redis.Client // nil without --redis
	sem     chan struct{} // bounds the handshakes in flight

	ctx    context.Context // cancelled when the worker stops
	cancel context.CancelFunc
	stop   chan struct{} // closed to stop the pollers

	up       atomic.Int64  // sockets connected (slow ones included)
	gone     atomic.Int64  // sockets stopped for good
	slowNow  atomic.Int64  // sockets connected and not read
	failed   atomic.Uint64 // failed attempts so far
	welcomed atomic.Uint64 // welcomes so far (reconnects included)
	waiting  atomic.Value  // string: what the scenario waits for, "" when it does not
	stopping atomic.Bool
	bcArmed  atomic.Uint64
	reconns  atomic.Uint64

	cpuAtReset time.Duration // process CPU time when the phase began; owned by the command loop
	lastUp     atomic.Int64  // when a socket was last welcomed, unix ns
	stormStart atomic.Int64  // when the storm began, unix ns

	mu       sync.Mutex
	failedBy map[string]uint64 // guarded by mu
	fatal    error             // guarded by mu
	pending  sync.WaitGroup    // connect attempts and reconnect timers in flight
}

// New builds the fleet of pl's sockets and starts its pollers; nothing is
// dialled before ConnectAll.
func New(pl *Plan) (*Fleet, error) {
	if len(pl.Targets) == 0 {
		return nil, errors.New("no target")
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{
		pl:       pl,
		dial:     newDialer(pl),
		sem:      make(chan struct{}, max(pl.Concurrency, 1)),
		ctx:      ctx,
		cancel:   cancel,
		stop:     make(chan struct{}),
		failedBy: map[string]uint64{},
	}
	np := pl.Pollers
	if np <= 0 {
		np = max(1, min(runtime.GOMAXPROCS(0), 4))
	}
	for i := range np {
		p, err := newPoller(f, uint64(pl.Worker)<<32|uint64(i)+1)
		if err != nil {
			f.closePollers()
			cancel()
			return nil, err
		}
		f.pollers = append(f.pollers, p)
	}
	byUser := map[int]*User{}
	every := 0
	if pl.SlowShare > 0 {
		every = max(1, int(1/pl.SlowShare+0.5))
	}
	for k, idx := range pl.Sockets {
		ui := idx % pl.Users
		u := byUser[ui]
		if u == nil {
			id := pl.UserPrefix + strconv.Itoa(ui)
			u = &User{id: id, channel: pl.ChannelPrefix + "user:" + id}
			byUser[ui] = u
			f.users = append(f.users, u)
		}
		if pl.ReplayEvents > 0 && ui >= pl.ReplayFrom {
			u.storm, u.away = true, ui < pl.ReplayAwayTo
		}
		s := &Socket{idx: idx, user: u, p: f.pollers[k%np], fd: -1}
		s.p.all = append(s.p.all, s)
		s.slowCandidate = every > 0 && k%every == every-1
		f.socks = append(f.socks, s)
	}
	sort.Slice(f.users, func(i, j int) bool { return f.users[i].id < f.users[j].id })
	if pl.Redis != "" {
		opt, err := RedisOptions(pl.Redis)
		if err != nil {
			f.closePollers()
			cancel()
			return nil, err
		}
		f.rdb = redis.NewClient(opt)
	}
	for _, p := range f.pollers {
		go p.run(f.stop)
	}
	return f, nil
}

// RedisOptions accepts redis://… URLs and bare host:port.
func RedisOptions(addr string) (*redis.Options, error) {
	if len(addr) > 8 && (addr[:8] == "redis://" || addr[:9] == "rediss://") {
		return redis.ParseURL(addr)
	}
	return &redis.Options{Addr: addr}, nil
}

func (f *Fleet) closePollers() {
	for _, p := range f.pollers {
		p.close()
	}
}

// Fail records an error that ends the worker's run.
func (f *Fleet) Fail(err error) {
	f.mu.Lock()
	if f.fatal == nil {
		f.fatal = err
	}
	f.mu.Unlock()
}

func (f *Fleet) countFailure(reason string) {
	f.failed.Add(1)
	f.mu.Lock()
	f.failedBy[reason]++
	f.mu.Unlock()
}

// each runs fn on every socket under its poller's lock.
func (f *Fleet) each(fn func(p *poller, s *Socket)) {
	for _, p := range f.pollers {
		p.mu.Lock()
		for _, s := range p.all {
			fn(p, s)
		}
		p.mu.Unlock()
	}
}

// ResetTallies starts a phase: every socket's accounting starts from its
// user's current seq.
func (f *Fleet) ResetTallies() {
	for _, p := range f.pollers {
		p.mu.Lock()
		p.t = newTally()
		p.mu.Unlock()
	}
	f.each(func(p *poller, s *Socket) {
		if s.state == sockUp {
			s.settle(s.user.assigned.Load(), &tally{dupSockets: map[*Socket]struct{}{}, oooSockets: map[*Socket]struct{}{}})
		}
	})
	f.mu.Lock()
	f.failedBy = map[string]uint64{}
	f.mu.Unlock()
	f.reconns.Store(0)
	f.cpuAtReset = cpuTime()
}

// Collect settles the sockets still up (every message published to their
// user must have arrived) and returns the phase's figures.
func (f *Fleet) Collect(phase string, start time.Time) *Result {
	r := &Result{Phase: phase, Elapsed: time.Since(start)}
	f.each(func(p *poller, s *Socket) {
		if s.state == sockUp {
			s.settle(s.user.assigned.Load(), p.t)
		}
	})
	var hs, lat, bc Histogram
	for _, p := range f.pollers {
		p.mu.Lock()
		p.t.addTo(r)
		hs.Merge(&p.t.handshake)
		lat.Merge(&p.t.latency)
		bc.Merge(&p.t.bc)
		p.mu.Unlock()
	}
	r.Handshake, r.Latency, r.Broadcast = hs.Sparse(), lat.Sparse(), bc.Sparse()
	r.Up = f.up.Load()
	r.ClientCPU = cpuTime() - f.cpuAtReset
	r.ClientRSSKiB = rssKiB()
	r.Reconnects = f.reconns.Load()
	f.mu.Lock()
	r.FailedBy = map[string]uint64{}
	for k, v := range f.failedBy {
		r.FailedBy[k] = v
	}
	f.mu.Unlock()
	return r
}

// Progress is the worker's state for the live line.
func (f *Fleet) Progress() *Progress {
	pr := &Progress{Up: f.up.Load(), Failed: f.failed.Load(), Welcomed: f.welcomed.Load()}
	pr.Waiting, _ = f.waiting.Load().(string)
	var lat Histogram
	for _, p := range f.pollers {
		p.mu.Lock()
		pr.Delivered += p.total
		lat.Merge(&p.t.interval)
		p.t.interval.Reset()
		p.mu.Unlock()
	}
	pr.Latency = lat.Sparse()
	return pr
}

// SetWaiting says what the scenario is waiting for, for the progress line
// ("" when it is not waiting): a wait shows as such rather than as a
// delivery rate of 0.
func (f *Fleet) SetWaiting(what string) { f.waiting.Store(what) }

// ConnectAll opens every socket not open yet and waits until each is up,
// gone for good, or the timeout passes.
func (f *Fleet) ConnectAll(timeout time.Duration) *Result {
	start := time.Now()
	f.ResetTallies()
	var todo []*Socket
	f.each(func(_ *poller, s *Socket) {
		if !s.started {
			s.started = true
			todo = append(todo, s)
		}
	})
	if f.pl.ArrivalRate > 0 {
		f.arrive(todo, start)
		return f.awaitConnect(start, timeout)
	}
	// A pool of Concurrency goroutines makes the first attempts, rather
	// than one parked goroutine per socket; retries schedule themselves.
	queue := make(chan *Socket)
	f.pending.Add(1)
	go func() {
		defer f.pending.Done()
		defer close(queue)
		for _, s := range todo {
			select {
			case queue <- s:
			case <-f.ctx.Done():
				return
			}
		}
	}()
	for range min(len(todo), cap(f.sem)) {
		f.pending.Add(1)
		go func() {
			defer f.pending.Done()
			for s := range queue {
				f.pending.Add(1)
				f.attempt(s)
			}
		}()
	}
	return f.awaitConnect(start, timeout)
}

// awaitConnect waits until every socket is up or gone, or the timeout
// passes, and collects the connect phase.
func (f *Fleet) awaitConnect(start time.Time, timeout time.Duration) *Result {
	deadline := start.Add(timeout)
	for time.Now().Before(deadline) && f.ctx.Err() == nil {
		if f.settled() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := f.Collect("connect", start)
	f.each(func(_ *poller, s *Socket) {
		if s.state != sockUp {
			r.Failed++
		}
	})
	if last := f.lastUp.Load(); last > start.UnixNano() {
		r.LastWelcome = time.Duration(last - start.UnixNano())
	}
	return r
}

// arriveAgain is arrive for reconnects (replay's storm).
func (f *Fleet) arriveAgain(todo []*Socket, start time.Time) {
	f.pace(len(todo), start, func(i int) { go f.reconnect(todo[i]) })
}

// arrive starts the first attempt of each of todo at the plan's arrival
// rate from start, in a goroutine of its own: an open loop, which does not
// wait for earlier sockets to be welcomed.
func (f *Fleet) arrive(todo []*Socket, start time.Time) {
	f.pace(len(todo), start, func(i int) { go f.attempt(todo[i]) })
}

// pace calls start(i) for i in [0, n) at the plan's arrival rate from
// begin, in a goroutine of its own, having added one to f.pending for
// each call.
func (f *Fleet) pace(n int, begin time.Time, start func(i int)) {
	every := time.Duration(float64(time.Second) / f.pl.ArrivalRate)
	f.pending.Add(1)
	go func() {
		defer f.pending.Done()
		for i := range n {
			if d := time.Until(begin.Add(time.Duration(i) * every)); d > 0 {
				select {
				case <-time.After(d):
				case <-f.ctx.Done():
					return
				}
			}
			f.pending.Add(1)
			start(i)
		}
	}()
}

// settled reports whether every socket is up (and read) or gone.
func (f *Fleet) settled() bool {
	return f.up.Load()+f.gone.Load() >= int64(len(f.socks)) && f.slowNow.Load() == 0
}

// Drain waits until every socket that is up has every message published to
// its user, or the drain timeout passes.
func (f *Fleet) Drain() {
	deadline := time.Now().Add(f.pl.DrainTimeout)
	for {
		var missing uint64
		f.each(func(_ *poller, s *Socket) {
			if s.state == sockUp {
				if top := s.user.assigned.Load(); top > s.startSeq {
					missing += (top - s.startSeq) - min(s.got, top-s.startSeq)
				}
			}
		})
		if missing == 0 || time.Now().After(deadline) || f.ctx.Err() != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Context is cancelled when the fleet stops.
func (f *Fleet) Context() context.Context { return f.ctx }

// Plan is the fleet's share of the run; it must not be modified.
func (f *Fleet) Plan() *Plan { return f.pl }

// Redis is the client for PUBLISH and the inbox appends; nil without
// Plan.Redis.
func (f *Fleet) Redis() *redis.Client { return f.rdb }

// Users are the fleet's users, sorted by id; the slice must not be
// modified.
func (f *Fleet) Users() []*User { return f.users }

// Up is how many sockets are connected, slow ones included.
func (f *Fleet) Up() int64 { return f.up.Load() }

// Err is the error that ended the fleet's run (see Fail), or nil.
func (f *Fleet) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// Each runs fn on every socket under its poller's lock: fn may call the
// socket's Locked methods.
func (f *Fleet) Each(fn func(s *Socket)) {
	f.each(func(_ *poller, s *Socket) { fn(s) })
}

// WaitUp waits until no socket is reconnecting, or timeout.
func (f *Fleet) WaitUp(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !f.settled() && time.Now().Before(deadline) && f.ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// CutWindow returns the live latency and the handshakes recorded since the
// last cut, and starts a new window.
func (f *Fleet) CutWindow() (lat, hs Histogram) {
	for _, p := range f.pollers {
		p.mu.Lock()
		lat.Merge(&p.t.window)
		hs.Merge(&p.t.hsWindow)
		p.t.window.Reset()
		p.t.hsWindow.Reset()
		p.mu.Unlock()
	}
	return lat, hs
}

// AwaitPublished waits, up to timeout, until every live socket that is up
// has the messages published to its user so far: a window's cut then holds
// the latency of what was published in it, late ones included.
func (f *Fleet) AwaitPublished(timeout time.Duration) {
	top := make(map[*User]uint64, len(f.users))
	for _, u := range f.users {
		if !u.storm {
			top[u] = u.assigned.Load()
		}
	}
	deadline := time.Now().Add(timeout)
	for f.ctx.Err() == nil {
		waiting := 0
		f.each(func(_ *poller, s *Socket) {
			if t, ok := top[s.user]; ok && s.state == sockUp && s.startSeq < t && s.maxSeq < t {
				waiting++
			}
		})
		if waiting == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown closes every socket as a tab being closed would, and stops.
func (f *Fleet) Shutdown() {
	f.stopping.Store(true)
	f.cancel()
	f.each(func(p *poller, s *Socket) {
		if s.open {
			p.clientCloseLocked(s, "done", false)
		}
	})
	f.pending.Wait()
	close(f.stop)
	for _, p := range f.pollers {
		<-p.done
		p.close()
	}
	f.dial.closeIdle()
	if f.rdb != nil {
		f.rdb.Close()
	}
}

// Cancel cancels Context: the command in progress ends at once.
func (f *Fleet) Cancel() { f.cancel() }
