package gateway

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// cpuSlots bounds how many handshakes (token requests and WebSocket
// upgrades) run their CPU-bound steps at once. A burst of reconnects is
// thousands of handshakes of a few hundred µs of CPU each; unbounded, each
// is a runnable goroutine, and the Go scheduler's run queues are FIFO, so
// the pub/sub reader and the write workers that relay live messages would
// wait behind all of them. Bounded, the burst waits here, parked, and a
// live message waits behind at most a slot's worth of handshake steps.
// A handshake gives its slot back while it waits for Redis (the jti, the
// subscription, the inbox), so the bound costs no throughput when Redis
// is slow, and a shard that is down does not hold the others' handshakes.
type cpuSlots struct {
	ch     chan struct{} // nil: no bound
	queued prometheus.Gauge
}

func newCPUSlots(n int, reg prometheus.Registerer) (*cpuSlots, error) {
	s := &cpuSlots{queued: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "herald_handshakes_queued",
		Help: "Token requests and handshakes waiting for a CPU slot (--handshake-concurrency).",
	})}
	if n > 0 {
		s.ch = make(chan struct{}, n)
	}
	if reg == nil {
		return s, nil
	}
	if err := reg.Register(s.queued); err != nil {
		return nil, err
	}
	return s, nil
}

// slot is one handshake's claim on a cpuSlots. Its zero value (with s set)
// holds nothing. It is used by one goroutine.
type slot struct {
	s    *cpuSlots
	held bool
}

// take waits for a slot until ctx ends; it reports whether it holds one.
func (h *slot) take(ctx context.Context) bool {
	if h.held || h.s.ch == nil {
		h.held = true
		return true
	}
	select {
	case h.s.ch <- struct{}{}:
		h.held = true
		return true
	default:
	}
	h.s.queued.Inc()
	defer h.s.queued.Dec()
	select {
	case h.s.ch <- struct{}{}:
		h.held = true
		return true
	case <-ctx.Done():
		return false
	}
}

// give returns the slot, if held.
func (h *slot) give() {
	if !h.held {
		return
	}
	h.held = false
	if h.s.ch != nil {
		<-h.s.ch
	}
}

// await runs wait, which blocks on I/O, with the slot given back, and then
// takes one again; it reports false when ctx ended first (wait has run).
func (h *slot) await(ctx context.Context, wait func()) bool {
	h.give()
	wait()
	return h.take(ctx)
}
