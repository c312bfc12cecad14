package loadtest

import (
	"fmt"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// progressLoop prints the combined state of the workers about once a
// second until the returned function is called.
func (r *runner) progressLoop() func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	r.lastAt = start
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				if r.cfg.ProgressTTY {
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

func (r *runner) printProgress(now, start time.Time) {
	var up int64
	var failed, delivered uint64
	var lat client.Histogram
	for _, we := range r.workers {
		we.mu.Lock()
		if we.last != nil {
			up += we.last.Up
			failed += we.last.Failed
			delivered += we.last.Delivered
		}
		lat.Merge(&we.lat)
		we.lat.Reset()
		we.mu.Unlock()
	}
	r.phaseMu.Lock()
	phase := r.phase
	r.phaseMu.Unlock()
	// Delivered counts restart with each scenario.
	rate := 0.0
	if dt := now.Sub(r.lastAt).Seconds(); dt > 0 && delivered >= r.last {
		rate = float64(delivered-r.last) / dt
	}
	r.last, r.lastAt = delivered, now
	line := fmt.Sprintf("%6.0fs %-9s up %d/%d  failed tries %d  deliveries %.0f/s", now.Sub(start).Seconds(), phase, up, r.cfg.Sockets, failed, rate)
	if lat.Count() > 0 {
		line += fmt.Sprintf("  latency p50 %.1f ms p99 %.1f ms", lat.Quantile(0.5), lat.Quantile(0.99))
	}
	if r.cfg.ProgressTTY {
		fmt.Fprint(r.cfg.Progress, "\r\033[K"+line)
	} else {
		fmt.Fprintln(r.cfg.Progress, line)
	}
}
