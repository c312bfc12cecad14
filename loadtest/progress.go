package loadtest

import (
	"fmt"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// progressLoop prints the combined state of the workers about once a
// second, and records it with Config.Timeline, until the returned function
// is called.
func (r *runner) progressLoop() func() {
	if r.cfg.Progress == nil && r.tl == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	r.lastAt = start
	if r.tl != nil {
		r.tl.begin(r.ctx, r.http, start)
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				if r.cfg.Progress != nil && r.cfg.ProgressTTY {
					fmt.Fprint(r.cfg.Progress, "\r\033[K")
				}
				return
			case now := <-t.C:
				r.printProgress(now, start)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// tick is the workers' combined state at one progress tick.
type tick struct {
	up                  int64
	failed, welcomed    uint64
	delivered           uint64
	lat                 client.Histogram // since the previous tick
	waiting             string           // what a scenario waits for, if one does
	deliveriesPerSecond float64
}

func (r *runner) collectTick(now time.Time) *tick {
	tk := &tick{}
	for _, we := range r.workers {
		we.mu.Lock()
		if we.last != nil {
			tk.up += we.last.Up
			tk.failed += we.last.Failed
			tk.welcomed += we.last.Welcomed
			tk.delivered += we.last.Delivered
			if tk.waiting == "" {
				tk.waiting = we.last.Waiting
			}
		}
		tk.lat.Merge(&we.lat)
		we.lat.Reset()
		we.mu.Unlock()
	}
	// Delivered counts restart with each scenario.
	if dt := now.Sub(r.lastAt).Seconds(); dt > 0 && tk.delivered >= r.last {
		tk.deliveriesPerSecond = float64(tk.delivered-r.last) / dt
	}
	r.last, r.lastAt = tk.delivered, now
	return tk
}

func (r *runner) printProgress(now, start time.Time) {
	tk := r.collectTick(now)
	r.phaseMu.Lock()
	phase := r.phase
	r.phaseMu.Unlock()
	if r.tl != nil {
		r.tl.record(now, tk)
	}
	if r.cfg.Progress == nil {
		return
	}
	line := fmt.Sprintf("%6.0fs %-9s up %d/%d  failed tries %d", now.Sub(start).Seconds(), phase, tk.up, r.cfg.Sockets, tk.failed)
	if tk.waiting != "" && tk.deliveriesPerSecond == 0 {
		line += "  waiting for " + tk.waiting
	} else {
		line += fmt.Sprintf("  deliveries %.0f/s", tk.deliveriesPerSecond)
	}
	if tk.lat.Count() > 0 {
		line += fmt.Sprintf("  latency p50 %.1f ms p99 %.1f ms", tk.lat.Quantile(0.5), tk.lat.Quantile(0.99))
	}
	if r.cfg.ProgressTTY {
		fmt.Fprint(r.cfg.Progress, "\r\033[K"+line)
	} else {
		fmt.Fprintln(r.cfg.Progress, line)
	}
}
