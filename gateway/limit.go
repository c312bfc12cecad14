package gateway

import (
	"math"
	"time"
)

// gradientLimit is an adaptive bound on concurrent work, after the
// gradient algorithm of Netflix's concurrency-limits: it compares the
// latency of recent work (a short average) with the latency the work has
// when nothing queues (the least seen lately), and shrinks the limit by
// their ratio when work slows down, or grows it by about its square root
// while latency holds. A handshake's latency is its CPU and its Redis
// round trips: when either saturates, latency grows and the limit falls,
// so the excess waits in the admission queue, before it has cost
// anything, instead of timing out after its token is spent. Once the
// replica is saturated a lower limit costs no throughput (the work in
// flight still keeps the CPU busy); it only shortens the time each
// handshake spends at work.
//
// It is not safe for concurrent use: admission.mu guards it.
type gradientLimit struct {
	limit    float64
	min, max float64
	short    ewma          // a few samples: the latency now
	base     windowMin     // the least latency seen lately
	floor    time.Duration // latency below it never shrinks the limit
}

// The algorithm's constants: a tolerance of 2 lets the latency double
// before the limit shrinks; smoothing damps each step.
const (
	limitTolerance = 2.0
	limitSmoothing = 0.2
	shortWindow    = 10
	baseWindow     = 30 * time.Second
	latencyFloor   = 50 * time.Millisecond
)

func newGradientLimit(initial, lo, hi int) *gradientLimit {
	return &gradientLimit{
		limit: float64(initial), min: float64(lo), max: float64(hi),
		short: ewma{n: shortWindow}, base: windowMin{window: baseWindow}, floor: latencyFloor,
	}
}

// current is the number of handshakes allowed in flight.
func (g *gradientLimit) current() int { return roundLimit(g.limit) }

// sample records one handshake's latency, observed at now with inflight
// handshakes at work (itself included).
func (g *gradientLimit) sample(now time.Time, rtt time.Duration, inflight int) {
	rtt = max(rtt, time.Microsecond)
	short := g.short.add(float64(rtt))
	base := g.base.add(now, rtt)
	// A limit that is not used tells nothing about a larger one.
	if float64(inflight) < g.limit/2 {
		return
	}
	want := max(limitTolerance*float64(base), float64(g.floor))
	gradient := math.Max(0.5, math.Min(1, want/short))
	next := g.limit*gradient + math.Sqrt(g.limit)
	next = g.limit*(1-limitSmoothing) + next*limitSmoothing
	g.limit = math.Max(g.min, math.Min(g.max, next))
}

// windowMin is the least of the samples of the current window and the one
// before it: a minimum that forgets within two windows.
type windowMin struct {
	window      time.Duration
	start       time.Time
	cur, before time.Duration // 0: none yet
}

func (w *windowMin) add(now time.Time, v time.Duration) time.Duration {
	if now.Sub(w.start) >= w.window {
		w.start, w.before, w.cur = now, w.cur, 0
	}
	if w.cur == 0 || v < w.cur {
		w.cur = v
	}
	if w.before != 0 && w.before < w.cur {
		return w.before
	}
	return w.cur
}

// ewma is an exponentially weighted moving average over about n samples,
// the first n of which are averaged plainly.
type ewma struct {
	n     int
	count int
	value float64
}

func (e *ewma) add(v float64) float64 {
	if e.count < e.n {
		e.count++
		e.value += (v - e.value) / float64(e.count)
	} else {
		e.value += (v - e.value) * 2 / float64(e.n+1)
	}
	return e.value
}
