package loadtest

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/herald-gw/herald/loadtest/htmlreport"
)

// Timeline is a run sampled about once a second: what the load tester saw,
// the scenarios' spans, and each --metrics server's CPU and memory.
type Timeline struct {
	Samples  []htmlreport.Sample
	Phases   []htmlreport.Phase
	Replicas []htmlreport.ReplicaSeries
}

// timelineRecorder builds a Timeline. record runs in the progress loop's
// goroutine; phase runs under runner.phaseMu; finish after both stopped.
type timelineRecorder struct {
	urls  []string
	ctx   context.Context
	http  *http.Client
	start time.Time
	prev  *tick   // the previous tick, for rates
	prevT float64 // its time
	cpu   []float64
	cpuAt time.Time
	tl    Timeline
}

func newTimelineRecorder(metrics []string) *timelineRecorder {
	t := &timelineRecorder{urls: metrics, cpu: make([]float64, len(metrics))}
	for _, u := range metrics {
		t.tl.Replicas = append(t.tl.Replicas, htmlreport.ReplicaSeries{Name: u})
	}
	for i := range t.cpu {
		t.cpu[i] = math.NaN()
	}
	return t
}

func (t *timelineRecorder) begin(ctx context.Context, c *http.Client, start time.Time) {
	t.ctx, t.http, t.start = ctx, c, start
	t.scrape(start)
}

// phase closes the current phase and opens p.
func (t *timelineRecorder) phase(p string, now time.Time) {
	at := now.Sub(t.start).Seconds()
	if t.start.IsZero() {
		at = 0
	}
	if n := len(t.tl.Phases); n > 0 {
		t.tl.Phases[n-1].End = at
	}
	t.tl.Phases = append(t.tl.Phases, htmlreport.Phase{Name: p, Start: at, End: at})
}

func (t *timelineRecorder) record(now time.Time, tk *tick) {
	at := now.Sub(t.start).Seconds()
	s := htmlreport.Sample{T: at, Up: tk.up, Deliveries: tk.deliveriesPerSecond,
		P50: math.NaN(), P90: math.NaN(), P99: math.NaN(), Max: math.NaN()}
	if t.prev != nil && at > t.prevT {
		dt := at - t.prevT
		if tk.welcomed >= t.prev.welcomed {
			s.Welcomed = float64(tk.welcomed-t.prev.welcomed) / dt
		}
		if tk.failed >= t.prev.failed {
			s.Refused = float64(tk.failed-t.prev.failed) / dt
		}
	} else if at > 0 {
		s.Welcomed, s.Refused = float64(tk.welcomed)/at, float64(tk.failed)/at
	}
	if tk.lat.Count() > 0 {
		s.P50, s.P90, s.P99, s.Max = tk.lat.Quantile(0.5), tk.lat.Quantile(0.9), tk.lat.Quantile(0.99), tk.lat.Quantile(1)
	}
	t.tl.Samples = append(t.tl.Samples, s)
	t.prev, t.prevT = tk, at
	t.scrape(now)
}

// scrape reads every server's CPU, memory and sockets.
func (t *timelineRecorder) scrape(now time.Time) {
	if len(t.urls) == 0 {
		return
	}
	sc := scrapeAll(t.ctx, t.http, t.urls)
	at := now.Sub(t.start).Seconds()
	dt := now.Sub(t.cpuAt).Seconds()
	for i, vals := range sc.values {
		if vals == nil {
			continue // unreachable this time
		}
		cpu := vals["process_cpu_seconds_total"]
		if !math.IsNaN(t.cpu[i]) && dt > 0 {
			t.tl.Replicas[i].Samples = append(t.tl.Replicas[i].Samples, htmlreport.ReplicaSample{
				T: at, CPU: math.Max(0, cpu-t.cpu[i]) / dt,
				RSSMiB: vals["process_resident_memory_bytes"] / (1 << 20), Sockets: vals["herald_sockets"],
			})
		}
		t.cpu[i] = cpu
	}
	t.cpuAt = now
}

func (t *timelineRecorder) finish() *Timeline {
	if n := len(t.tl.Phases); n > 0 && !t.start.IsZero() {
		t.tl.Phases[n-1].End = time.Since(t.start).Seconds()
	}
	return &t.tl
}
