package gateway

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Admission: the work of a handshake (the token's consumption, the
// subscription, the inbox read, the welcome) starts only when admission
// lets it. Admission bounds the handshakes in flight with an adaptive
// limit (limit.go) and, with --handshake-rate, their rate. A handshake
// over either waits in a queue before its upgrade, having cost the replica
// only its HTTP request and a token check: a storm waits rather than
// fails after its token is spent.
//
// The queue is served in turns: client addresses take turns, and within an
// address its users do, so that one address or one user with many tokens
// cannot make the others wait behind them. When the queue is full, the
// newest waiter of the address holding the most waiters is refused (4029)
// to make room, unless that address is the newcomer's. A token already in
// flight on this replica (waiting or at work) is refused at once.

// Errors of admission.wait; the handshake closes the socket with the
// matching code.
var (
	errTokenInFlight  = errors.New("gateway: the token is already in a handshake on this replica")
	errAdmissionFull  = errors.New("gateway: the handshake queue is full")
	errAdmissionWait  = errors.New("gateway: the handshake waited too long for its turn")
	errAdmissionDrain = errors.New("gateway: the replica is draining")
	errAdmissionGone  = errors.New("gateway: the client went away while its handshake waited")
)

// admissionConfig sizes an admission.
type admissionConfig struct {
	rate     float64       // handshakes a second; 0: no cap
	burst    int           // with rate
	maxLimit int           // most handshakes in flight
	queue    int           // most waiters (the rate may lower it)
	wait     time.Duration // longest wait in the queue
	turn     time.Duration // with rate: the queue holds the waiters whose turn comes within it
}

// admission is the gate in front of the handshakes' work.
type admission struct {
	cfg   admissionConfig
	rate  *rate.Limiter // nil without a rate cap; its own lock
	limit *gradientLimit

	mu       sync.Mutex
	inflight int                   // guarded by mu: admitted, not yet released
	queued   int                   // guarded by mu: waiters in addrs
	jtis     map[string]struct{}   // guarded by mu: tokens waiting or at work
	addrs    map[string]*addrQueue // guarded by mu
	ring     turns[*addrQueue]     // guarded by mu: addresses with waiters, in turn order
	timer    *time.Timer           // guarded by mu: wakes dispatch when the rate allows; nil when none is armed
	draining bool                  // guarded by mu: set by drain, new waiters of queue are refused
	capacity int                   // read-only: the queue's bound

	waited                     prometheus.Counter
	inflightG, queuedG, limitG prometheus.GaugeFunc
}

// addrQueue is one client address's waiters, by user.
type addrQueue struct {
	ip     string
	turn   *turn[*addrQueue]     // its place in admission.ring
	users  turns[*userQueue]     // users with waiters, in turn order
	byUser map[string]*userQueue // the same users
	n      int                   // waiters
}

type userQueue struct {
	user    string
	turn    *turn[*userQueue] // its place in addrQueue.users
	waiters []*waiter         // FIFO
}

// waiter is a handshake in the queue. A waiter of wait has done, closed
// when it is admitted or refused (err set), under admission.mu. A waiter of
// queue has then instead, called once under admission.mu, and a timer for
// its longest wait: it holds no goroutine while it waits.
type waiter struct {
	ip, user, jti string
	done          chan struct{}
	err           error // guarded by admission.mu until done is closed

	then     func(*ticket, error)
	timer    *time.Timer // with then: refuses it after the longest wait
	resolved bool        // with then, guarded by admission.mu: then has been called
}

// ticket is an admitted handshake's slot; release gives it back.
type ticket struct {
	a     *admission
	jti   string
	start time.Time
	once  sync.Once
}

func newAdmission(cfg admissionConfig, reg prometheus.Registerer) (*admission, error) {
	a := &admission{
		cfg:   cfg,
		limit: newGradientLimit(min(initialLimit, cfg.maxLimit), minLimit, cfg.maxLimit),
		jtis:  make(map[string]struct{}),
		addrs: make(map[string]*addrQueue),
	}
	a.capacity = cfg.queue
	if cfg.rate > 0 {
		a.rate = rate.NewLimiter(rate.Limit(cfg.rate), cfg.burst)
		a.capacity = min(a.capacity, int(cfg.rate*cfg.turn.Seconds()))
	}
	a.waited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_handshakes_paced_total",
		Help: "Handshakes that waited in the admission queue for their turn (those refused count in herald_auth_failures_total{reason=\"rate_limited\"}).",
	})
	a.inflightG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_handshakes_in_flight", Help: "Handshakes admitted and not yet welcomed or refused.",
	}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.inflight) })
	a.queuedG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_handshakes_queued", Help: "Handshakes waiting for admission, before their upgrade.",
	}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.queued) })
	a.limitG = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_handshake_limit", Help: "The adaptive bound on handshakes in flight.",
	}, func() float64 { a.mu.Lock(); defer a.mu.Unlock(); return float64(a.limit.current()) })
	if reg != nil {
		for _, c := range []prometheus.Collector{a.waited, a.inflightG, a.queuedG, a.limitG} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register admission metrics: %w", err)
			}
		}
	}
	return a, nil
}

// wait returns a ticket when the handshake of token jti, for user from
// ip, may start its work, or why it may not. It gives up when drain or gone
// is closed, or after the configured wait.
func (a *admission) wait(ip, user, jti string, drain, gone <-chan struct{}) (*ticket, error) {
	a.mu.Lock()
	if _, dup := a.jtis[jti]; dup {
		a.mu.Unlock()
		return nil, errTokenInFlight
	}
	if a.queued == 0 && a.inflight < a.limit.current() && a.allowRateLocked() {
		a.jtis[jti] = struct{}{}
		a.inflight++
		a.mu.Unlock()
		return &ticket{a: a, jti: jti, start: time.Now()}, nil
	}
	if a.queued >= a.capacity && !a.evictLocked(ip) {
		a.mu.Unlock()
		return nil, errAdmissionFull
	}
	w := &waiter{ip: ip, user: user, jti: jti, done: make(chan struct{})}
	a.jtis[jti] = struct{}{}
	a.pushLocked(w)
	a.dispatchLocked()
	a.mu.Unlock()
	a.waited.Inc()

	t := time.NewTimer(a.cfg.wait)
	defer t.Stop()
	var why error
	select {
	case <-w.done:
	case <-drain:
		why = errAdmissionDrain
	case <-gone:
		why = errAdmissionGone
	case <-t.C:
		why = errAdmissionWait
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-w.done: // admitted or refused, perhaps just now
		if w.err != nil {
			return nil, w.err
		}
		tk := &ticket{a: a, jti: jti, start: time.Now()}
		if why != nil {
			a.releaseLocked(tk, false)
			return nil, why
		}
		return tk, nil
	default:
	}
	a.removeLocked(w)
	delete(a.jtis, jti)
	return nil, why
}

// queue is wait for a handshake that keeps no goroutine while it waits.
// When the handshake may start at once, or is refused at once, queue
// returns the ticket or the error and queued false. Otherwise it queues the
// handshake and returns queued true: then is called later, once, with the
// ticket, or with errAdmissionFull (evicted), errAdmissionWait (after the
// longest wait) or errAdmissionDrain (drain). then is called under
// admission.mu: it must hand the work to another goroutine, and neither
// block nor take a lock.
func (a *admission) queue(ip, user, jti string, then func(*ticket, error)) (tk *ticket, err error, queued bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch _, dup := a.jtis[jti]; {
	case dup:
		return nil, errTokenInFlight, false
	case a.draining:
		return nil, errAdmissionDrain, false
	case a.queued == 0 && a.inflight < a.limit.current() && a.allowRateLocked():
		a.jtis[jti] = struct{}{}
		a.inflight++
		return &ticket{a: a, jti: jti, start: time.Now()}, nil, false
	case a.queued >= a.capacity && !a.evictLocked(ip):
		return nil, errAdmissionFull, false
	}
	w := &waiter{ip: ip, user: user, jti: jti, then: then}
	w.timer = time.AfterFunc(a.cfg.wait, func() { a.expire(w) })
	a.jtis[jti] = struct{}{}
	a.pushLocked(w)
	a.waited.Inc()
	a.dispatchLocked()
	return nil, nil, true
}

// expire refuses a waiter of queue that is still waiting after the
// longest wait.
func (a *admission) expire(w *waiter) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w.resolved {
		return
	}
	a.removeLocked(w)
	delete(a.jtis, w.jti)
	a.resolveLocked(w, errAdmissionWait)
}

// drain refuses every waiter of queue with errAdmissionDrain, and those
// that come later; waiters of wait see the drain channel themselves.
func (a *admission) drain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.draining = true
	var gone []*waiter
	a.ring.each(func(aq *addrQueue) {
		aq.users.each(func(uq *userQueue) {
			for _, w := range uq.waiters {
				if w.then != nil {
					gone = append(gone, w)
				}
			}
		})
	})
	for _, w := range gone {
		a.removeLocked(w)
		delete(a.jtis, w.jti)
		a.resolveLocked(w, errAdmissionDrain)
	}
}

// release gives the slot back. The time since admission is a sample for
// the limit, when sample is set (a handshake that did its work).
func (t *ticket) release(sample bool) {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.a.mu.Lock()
		defer t.a.mu.Unlock()
		t.a.releaseLocked(t, sample)
	})
}

func (a *admission) releaseLocked(t *ticket, sample bool) {
	if sample {
		now := time.Now()
		a.limit.sample(now, now.Sub(t.start), a.inflight)
	}
	a.inflight--
	delete(a.jtis, t.jti)
	a.dispatchLocked()
}

// allowRateLocked takes a turn of the rate cap now, if there is one.
func (a *admission) allowRateLocked() bool {
	if a.rate == nil {
		return true
	}
	return a.rate.Allow()
}

// dispatchLocked admits waiters while the limit and the rate allow.
func (a *admission) dispatchLocked() {
	for a.queued > 0 && a.inflight < a.limit.current() {
		if a.rate != nil {
			now := time.Now()
			r := a.rate.ReserveN(now, 1)
			if d := r.DelayFrom(now); d > 0 {
				r.CancelAt(now)
				if a.timer == nil {
					a.timer = time.AfterFunc(d, func() {
						a.mu.Lock()
						defer a.mu.Unlock()
						a.timer = nil
						a.dispatchLocked()
					})
				}
				return
			}
		}
		w := a.popLocked()
		a.inflight++
		a.resolveLocked(w, nil)
	}
}

// resolveLocked ends w's wait: admitted (err nil, already counted in
// flight) or refused with err. It is out of the queue.
func (a *admission) resolveLocked(w *waiter, err error) {
	w.err = err
	if w.then == nil {
		close(w.done)
		return
	}
	w.resolved = true
	w.timer.Stop()
	var tk *ticket
	if err == nil {
		tk = &ticket{a: a, jti: w.jti, start: time.Now()}
	}
	w.then(tk, err)
}

// pushLocked queues w behind its address's and user's earlier waiters.
func (a *admission) pushLocked(w *waiter) {
	aq := a.addrs[w.ip]
	if aq == nil {
		aq = &addrQueue{ip: w.ip, byUser: make(map[string]*userQueue)}
		aq.turn = a.ring.add(aq)
		a.addrs[w.ip] = aq
	}
	uq := aq.byUser[w.user]
	if uq == nil {
		uq = &userQueue{user: w.user}
		uq.turn = aq.users.add(uq)
		aq.byUser[w.user] = uq
	}
	uq.waiters = append(uq.waiters, w)
	aq.n++
	a.queued++
}

// popLocked takes the next turn's waiter: the next address in the ring,
// and its next user's oldest waiter.
func (a *admission) popLocked() *waiter {
	aq := a.ring.cur.v
	uq := aq.users.cur.v
	w := uq.waiters[0]
	uq.waiters[0] = nil
	uq.waiters = uq.waiters[1:]
	a.dropLocked(aq, uq, true)
	return w
}

// removeLocked takes w out of the queue (it gave up).
func (a *admission) removeLocked(w *waiter) {
	aq := a.addrs[w.ip]
	uq := aq.byUser[w.user]
	uq.waiters = slices.DeleteFunc(uq.waiters, func(x *waiter) bool { return x == w })
	a.dropLocked(aq, uq, false)
}

// dropLocked accounts for one waiter taken from uq, of aq: empty queues
// leave their ring, and after a turn (served) the next turn moves on.
func (a *admission) dropLocked(aq *addrQueue, uq *userQueue, served bool) {
	aq.n--
	a.queued--
	if len(uq.waiters) == 0 {
		aq.users.remove(uq.turn)
		delete(aq.byUser, uq.user)
	} else if served {
		aq.users.advance()
	}
	if aq.n == 0 {
		a.ring.remove(aq.turn)
		delete(a.addrs, aq.ip)
	} else if served {
		a.ring.advance()
	}
}

// turns is a round-robin order: new members join at the end of the
// current round, a member leaves in constant time, and cur is the next
// turn's (nil when empty).
type turns[T any] struct {
	head, cur *turn[T] // head: the first of a round
}

type turn[T any] struct {
	v          T
	prev, next *turn[T]
}

// add appends v to the round, after every member (before head).
func (r *turns[T]) add(v T) *turn[T] {
	t := &turn[T]{v: v}
	if r.head == nil {
		t.prev, t.next = t, t
		r.head, r.cur = t, t
		return t
	}
	t.prev, t.next = r.head.prev, r.head
	r.head.prev.next = t
	r.head.prev = t
	return t
}

// remove takes t out; when it had the turn, the member after it has it.
func (r *turns[T]) remove(t *turn[T]) {
	if t.next == t {
		r.head, r.cur = nil, nil
	} else {
		t.prev.next, t.next.prev = t.next, t.prev
		if r.head == t {
			r.head = t.next
		}
		if r.cur == t {
			r.cur = t.next
		}
	}
	t.prev, t.next = nil, nil
}

// advance gives the turn to the next member.
func (r *turns[T]) advance() { r.cur = r.cur.next }

// each calls f with every member, from head.
func (r *turns[T]) each(f func(T)) {
	if r.head == nil {
		return
	}
	for t := r.head; ; {
		next := t.next
		f(t.v)
		if next == r.head {
			return
		}
		t = next
	}
}

// evictLocked makes room in a full queue for a waiter from ip: the newest
// waiter of the address holding the most (its user holding the most) is
// refused, unless ip holds as many. It reports whether room was made.
func (a *admission) evictLocked(ip string) bool {
	var big *addrQueue
	a.ring.each(func(q *addrQueue) {
		if big == nil || q.n > big.n {
			big = q
		}
	})
	mine := 0
	if q := a.addrs[ip]; q != nil {
		mine = q.n
	}
	if big == nil || big.n <= mine+1 {
		return false
	}
	var uq *userQueue
	big.users.each(func(u *userQueue) {
		if uq == nil || len(u.waiters) > len(uq.waiters) {
			uq = u
		}
	})
	w := uq.waiters[len(uq.waiters)-1]
	a.removeLocked(w)
	delete(a.jtis, w.jti)
	a.resolveLocked(w, errAdmissionFull)
	return true
}

// stop disarms the rate timer.
func (a *admission) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// The adaptive limit's bounds.
const (
	initialLimit = 32
	minLimit     = 4
)

// roundLimit is the whole number of slots a limit allows.
func roundLimit(v float64) int { return int(math.Floor(v)) }
