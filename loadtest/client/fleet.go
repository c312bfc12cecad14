package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// worker holds one share of the run's sockets: its users whole, so that one
// publisher numbers each user's messages. It runs the commands the parent
// sends, one at a time, and answers each with a result.
type worker struct {
	pl      *plan
	pollers []*poller
	socks   []*socket
	users   []*user
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
	stopping atomic.Bool
	bcArmed  atomic.Uint64
	reconns  atomic.Uint64

	cpuAtReset time.Duration // process CPU time when the phase began; owned by the command loop
	live       *liveFanout   // replay's fan-out between its steps; owned by the command loop
	rpBegan    time.Time     // when replay began; owned by the command loop
	rpStart    atomic.Int64  // when replay's storm began, unix ns

	mu       sync.Mutex
	failedBy map[string]uint64 // guarded by mu
	fatal    error             // guarded by mu
	pending  sync.WaitGroup    // connect attempts and reconnect timers in flight
}

func newWorker(pl *plan) (*worker, error) {
	if len(pl.Targets) == 0 {
		return nil, errors.New("no target")
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{
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
		p, err := newPoller(w, uint64(pl.Worker)<<32|uint64(i)+1)
		if err != nil {
			w.closePollers()
			cancel()
			return nil, err
		}
		w.pollers = append(w.pollers, p)
	}
	byUser := map[int]*user{}
	every := 0
	if pl.SlowShare > 0 {
		every = max(1, int(1/pl.SlowShare+0.5))
	}
	for k, idx := range pl.Sockets {
		ui := idx % pl.Users
		u := byUser[ui]
		if u == nil {
			id := pl.UserPrefix + strconv.Itoa(ui)
			u = &user{id: id, channel: pl.ChannelPrefix + "user:" + id}
			byUser[ui] = u
			w.users = append(w.users, u)
		}
		if pl.ReplayEvents > 0 && ui >= pl.ReplayFrom {
			u.storm, u.away = true, ui < pl.ReplayAwayTo
		}
		s := &socket{idx: idx, user: u, p: w.pollers[k%np], fd: -1}
		s.p.all = append(s.p.all, s)
		s.slowCandidate = every > 0 && k%every == every-1
		w.socks = append(w.socks, s)
	}
	sort.Slice(w.users, func(i, j int) bool { return w.users[i].id < w.users[j].id })
	if pl.Redis != "" {
		opt, err := redisOptions(pl.Redis)
		if err != nil {
			w.closePollers()
			cancel()
			return nil, err
		}
		w.rdb = redis.NewClient(opt)
	}
	for _, p := range w.pollers {
		go p.run(w.stop)
	}
	return w, nil
}

// redisOptions accepts redis://… URLs and bare host:port.
func redisOptions(addr string) (*redis.Options, error) {
	if len(addr) > 8 && (addr[:8] == "redis://" || addr[:9] == "rediss://") {
		return redis.ParseURL(addr)
	}
	return &redis.Options{Addr: addr}, nil
}

func (w *worker) closePollers() {
	for _, p := range w.pollers {
		p.close()
	}
}

// fail records an error that ends the worker's run.
func (w *worker) fail(err error) {
	w.mu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.mu.Unlock()
}

func (w *worker) countFailure(reason string) {
	w.failed.Add(1)
	w.mu.Lock()
	w.failedBy[reason]++
	w.mu.Unlock()
}

// attempt makes one connect attempt for s and, when it fails, schedules the
// next as the failure's policy says.
func (w *worker) attempt(s *socket) {
	defer w.pending.Done()
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return
	}
	mint := newSessionMinter(w.pl.SessionSecret, w.pl.UserClaim, time.Now)
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, 20*time.Second)
	conn, rest, inboxID, err := w.dial.connect(ctx, s, mint)
	cancel()
	<-w.sem
	if err == nil {
		// The counters are reset before register: once registered, the
		// socket may be closed and its next attempt started by another
		// goroutine at any time.
		attempts, invalid := s.attempts, s.invalid
		s.attempts, s.invalid = 0, 0
		if err = s.p.register(s, conn, rest, inboxID, time.Since(start)); err != nil {
			s.attempts, s.invalid = attempts, invalid // not registered: still ours
			if !errors.Is(err, errStopping) {
				w.countFailure("client_fd_error")
				w.schedule(s, retryBackoff, 0, false)
			}
			return
		}
		return
	}
	if w.ctx.Err() != nil {
		return
	}
	var ae *attemptError
	if !errors.As(err, &ae) {
		ae = &attemptError{reason: "error", next: retryBackoff, err: err}
	}
	w.countFailure(ae.reason)
	w.schedule(s, ae.next, ae.wait, ae.reason == "close_4002")
}

// afterClose applies the reconnect policy after a session ended. The
// caller has added one to w.pending for it.
func (w *worker) afterClose(s *socket, code int, byServer bool, hint time.Duration) {
	step := retryBackoff
	if byServer {
		step = closeStep(code)
	}
	wait := time.Duration(0)
	if step == retryAfter {
		if hint >= 0 {
			wait = hint
		} else {
			step = retryBackoff
		}
	}
	defer w.pending.Done()
	w.schedule(s, step, wait, code == 4002)
}

// reconnect opens s again at once (after a client-side close). The caller
// has added one to w.pending for it.
func (w *worker) reconnect(s *socket) {
	w.reconns.Add(1)
	w.attempt(s)
}

// schedule starts s's next attempt per step.
func (w *worker) schedule(s *socket, step nextStep, wait time.Duration, invalid bool) {
	if invalid {
		s.invalid++
	} else {
		s.invalid = 0
	}
	switch step {
	case stop:
		w.setGone(s)
		return
	case retryOnce:
		if s.invalid > 1 {
			w.setGone(s)
			return
		}
		wait = 0
	case retryNow:
		wait = 0
	case retryBackoff:
		s.attempts++
		wait = backoff(s.attempts)
	case retryAfter:
		wait = jitter(wait)
	}
	w.pending.Add(1)
	if wait <= 0 {
		go w.attempt(s)
		return
	}
	t := time.NewTimer(wait)
	go func() {
		select {
		case <-t.C:
			w.attempt(s)
		case <-w.ctx.Done():
			t.Stop()
			w.pending.Done()
		}
	}()
}

func (w *worker) setGone(s *socket) {
	s.p.mu.Lock()
	if s.state != sockGone {
		s.state = sockGone
		w.gone.Add(1)
	}
	s.p.mu.Unlock()
}

// backoff is the jittered exponential reconnect delay: 250 ms doubling to
// 10 s, each drawn uniformly in [d/2, d).
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < attempt && d < 10*time.Second; i++ {
		d *= 2
	}
	return jitter(min(d, 10*time.Second))
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// each runs fn on every socket under its poller's lock.
func (w *worker) each(fn func(p *poller, s *socket)) {
	for _, p := range w.pollers {
		p.mu.Lock()
		for _, s := range p.all {
			fn(p, s)
		}
		p.mu.Unlock()
	}
}

// resetTallies starts a phase: every socket's accounting starts from its
// user's current seq.
func (w *worker) resetTallies() {
	for _, p := range w.pollers {
		p.mu.Lock()
		p.t = newTally()
		p.mu.Unlock()
	}
	w.each(func(p *poller, s *socket) {
		if s.state == sockUp {
			s.settle(s.user.assigned.Load(), &tally{dupSockets: map[*socket]struct{}{}, oooSockets: map[*socket]struct{}{}})
		}
	})
	w.mu.Lock()
	w.failedBy = map[string]uint64{}
	w.mu.Unlock()
	w.reconns.Store(0)
	w.cpuAtReset = cpuTime()
}

// collect settles the sockets still up (every message published to their
// user must have arrived) and returns the phase's figures.
func (w *worker) collect(phase string, start time.Time) *phaseResult {
	r := &phaseResult{Phase: phase, Elapsed: time.Since(start)}
	w.each(func(p *poller, s *socket) {
		if s.state == sockUp {
			s.settle(s.user.assigned.Load(), p.t)
		}
	})
	var hs, lat, bc Histogram
	for _, p := range w.pollers {
		p.mu.Lock()
		p.t.addTo(r)
		hs.Merge(&p.t.handshake)
		lat.Merge(&p.t.latency)
		bc.Merge(&p.t.bc)
		p.mu.Unlock()
	}
	r.Handshake, r.Latency, r.Broadcast = hs.sparse(), lat.sparse(), bc.sparse()
	r.Up = w.up.Load()
	r.ClientCPU = cpuTime() - w.cpuAtReset
	r.ClientRSSKiB = rssKiB()
	r.Reconnects = w.reconns.Load()
	w.mu.Lock()
	r.FailedBy = map[string]uint64{}
	for k, v := range w.failedBy {
		r.FailedBy[k] = v
	}
	w.mu.Unlock()
	return r
}

// progress is the worker's state for the live line.
func (w *worker) progress() *progress {
	pr := &progress{Up: w.up.Load(), Failed: w.failed.Load()}
	var lat Histogram
	for _, p := range w.pollers {
		p.mu.Lock()
		pr.Delivered += p.total
		lat.Merge(&p.t.interval)
		p.t.interval.Reset()
		p.mu.Unlock()
	}
	pr.Latency = lat.sparse()
	return pr
}

// connectAll opens every socket not open yet and waits until each is up,
// gone for good, or the timeout passes.
func (w *worker) connectAll(timeout time.Duration) *phaseResult {
	start := time.Now()
	w.resetTallies()
	var todo []*socket
	w.each(func(_ *poller, s *socket) {
		if !s.started {
			s.started = true
			todo = append(todo, s)
		}
	})
	// A pool of Concurrency goroutines makes the first attempts, rather
	// than one parked goroutine per socket; retries schedule themselves.
	queue := make(chan *socket)
	w.pending.Add(1)
	go func() {
		defer w.pending.Done()
		defer close(queue)
		for _, s := range todo {
			select {
			case queue <- s:
			case <-w.ctx.Done():
				return
			}
		}
	}()
	for range min(len(todo), cap(w.sem)) {
		w.pending.Add(1)
		go func() {
			defer w.pending.Done()
			for s := range queue {
				w.pending.Add(1)
				w.attempt(s)
			}
		}()
	}
	deadline := start.Add(timeout)
	for time.Now().Before(deadline) && w.ctx.Err() == nil {
		if w.settled() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := w.collect("connect", start)
	w.each(func(_ *poller, s *socket) {
		if s.state != sockUp {
			r.Failed++
		}
	})
	return r
}

// settled reports whether every socket is up (and read) or gone.
func (w *worker) settled() bool {
	return w.up.Load()+w.gone.Load() >= int64(len(w.socks)) && w.slowNow.Load() == 0
}

// drain waits until every socket that is up has every message published to
// its user, or the drain timeout passes.
func (w *worker) drain() {
	deadline := time.Now().Add(w.pl.DrainTimeout)
	for {
		var missing uint64
		w.each(func(_ *poller, s *socket) {
			if s.state == sockUp {
				if top := s.user.assigned.Load(); top > s.startSeq {
					missing += (top - s.startSeq) - min(s.got, top-s.startSeq)
				}
			}
		})
		if missing == 0 || time.Now().After(deadline) || w.ctx.Err() != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serve reads commands from in and writes events to out until stop or EOF.
func (w *worker) serve(in *bufio.Scanner, out io.Writer) error {
	var outMu sync.Mutex
	emit := func(e event) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = out.Write(encodeLine(e))
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		for {
			select {
			case <-tick.C:
				emit(event{Ev: "progress", Progress: w.progress()})
			case <-w.ctx.Done():
				return
			}
		}
	}()
	defer func() {
		w.shutdown()
		<-progDone
	}()
	// Commands are read on their own goroutine so that the end of the
	// input (the parent gave up: its deadline passed, or it died) cancels
	// the command in progress at once.
	cmds := make(chan []byte)
	var readErr error
	go func() {
		defer close(cmds)
		for in.Scan() {
			select {
			case cmds <- append([]byte(nil), in.Bytes()...):
			case <-w.ctx.Done():
				return
			}
		}
		readErr = in.Err()
		w.cancel()
	}()
	emit(event{Ev: "ready"})
	for line := range cmds {
		var c command
		if err := json.Unmarshal(line, &c); err != nil {
			return fmt.Errorf("bad command: %w", err)
		}
		var r *phaseResult
		switch c.Op {
		case "connect":
			r = w.connectAll(c.Timeout)
		case "fanout":
			r = w.fanout(c)
		case "churn":
			r = w.churn(c)
		case "slow":
			r = w.slow(c)
		case "bc_arm":
			w.resetTallies()
			w.bcArmed.Store(c.ID)
			emit(event{Ev: "armed"})
			continue
		case "bc_wait":
			r = w.broadcastWait(c)
		case "rp_away":
			r = w.replayAway(c)
		case "rp_base":
			r = w.replayBase(c)
		case "rp_storm":
			r = w.replayStorm(c)
		case "rp_cut":
			r = w.replayCut()
		case "rp_end":
			r = w.replayEnd()
		case "stop":
			return nil
		default:
			return fmt.Errorf("unknown command %q", c.Op)
		}
		w.mu.Lock()
		err := w.fatal
		w.mu.Unlock()
		if err != nil {
			emit(event{Ev: "error", Err: err.Error()})
			return err
		}
		if w.ctx.Err() != nil {
			break
		}
		emit(event{Ev: "result", Result: r})
	}
	return readErr
}

// shutdown closes every socket as a tab being closed would, and stops.
func (w *worker) shutdown() {
	w.stopping.Store(true)
	w.cancel()
	w.stopLive()
	w.each(func(p *poller, s *socket) {
		if s.open {
			p.clientCloseLocked(s, "done", false)
		}
	})
	w.pending.Wait()
	close(w.stop)
	for _, p := range w.pollers {
		<-p.done
		p.close()
	}
	w.dial.closeIdle()
	if w.rdb != nil {
		w.rdb.Close()
	}
}
