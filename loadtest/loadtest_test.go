package loadtest

import (
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Targets: []string{"http://127.0.0.1:1/"}, Sockets: 40000, SessionSecret: make([]byte, 32)}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Procs != 3 || c.Users != 40000 || c.Metrics[0] != "http://127.0.0.1:1/metrics" || len(c.Scenarios) != 1 {
		t.Errorf("defaults: procs %d users %d metrics %v scenarios %v", c.Procs, c.Users, c.Metrics, c.Scenarios)
	}
	bad := []Config{
		{Sockets: 1, SessionSecret: make([]byte, 32)},
		{Targets: []string{"127.0.0.1:1"}, Sockets: 1, SessionSecret: make([]byte, 32)},
		{Targets: []string{"http://h:1"}, Sockets: 1, SessionSecret: make([]byte, 31)},
		{Targets: []string{"http://h:1"}, Sockets: 1, Users: 2, SessionSecret: make([]byte, 32)},
		{Targets: []string{"http://h:1"}, Sockets: 1, SessionSecret: make([]byte, 32), Scenarios: []string{"fanout"}},
		{Targets: []string{"http://h:1"}, Sockets: 1, SessionSecret: make([]byte, 32), Redis: "h:1", Scenarios: []string{"nope"}},
	}
	for i, c := range bad {
		if err := c.fill(); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}

// TestResyncExcusesLoss: what is missing when herald says resync is
// announced, not lost; what is missing after it is lost again.
func TestProgressLine(t *testing.T) {
	for _, tty := range []bool{true, false} {
		var buf strings.Builder
		r := &runner{cfg: Config{Progress: &buf, ProgressTTY: tty, Sockets: 10}, phase: "fanout"}
		we := &workerEnd{last: &client.Progress{Up: 5, Failed: 1, Delivered: 300}}
		we.lat.Record(2 * time.Millisecond)
		r.workers = []*workerEnd{we}
		start := time.Now()
		r.lastAt = start
		r.printProgress(start.Add(time.Second), start)
		out := buf.String()
		if !strings.Contains(out, "fanout") || !strings.Contains(out, "up 5/10") || !strings.Contains(out, "deliveries 300/s") || !strings.Contains(out, "p99 2.0 ms") {
			t.Errorf("tty %v: %q", tty, out)
		}
		if tty != strings.HasPrefix(out, "\r\033[K") || tty == strings.HasSuffix(out, "\n") {
			t.Errorf("tty %v: a terminal gets one updating line, a pipe plain lines: %q", tty, out)
		}
	}
}

// TestProgressLineWaiting: while a scenario waits (for herald to shed slow
// sockets, for reconnects), the line says what for instead of a delivery
// rate of 0.
func TestProgressLineWaiting(t *testing.T) {
	var buf strings.Builder
	r := &runner{cfg: Config{Progress: &buf, Sockets: 10}, phase: "slow"}
	we := &workerEnd{last: &client.Progress{Up: 10, Waiting: "herald to shed the slow sockets (4009): 2 of 3 still open"}}
	r.workers = []*workerEnd{we}
	start := time.Now()
	r.lastAt = start
	r.printProgress(start.Add(time.Second), start)
	out := buf.String()
	if !strings.Contains(out, "waiting for herald to shed the slow sockets (4009): 2 of 3 still open") || strings.Contains(out, "deliveries 0/s") {
		t.Errorf("progress while waiting: %q", out)
	}
}

// TestProgressUpAfterResult: a scenario's result updates the sockets-up
// count of the next progress line, which must not lag behind the report.
func TestProgressUpAfterResult(t *testing.T) {
	pr, pw := io.Pipe()
	we := &workerEnd{Worker: Worker{Out: pr}, results: make(chan *client.Result, 1), armed: make(chan struct{}, 1), errs: make(chan error, 2)}
	go we.read()
	write := func(e client.Event) {
		b, _ := json.Marshal(e)
		if _, err := pw.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	write(client.Event{Ev: "progress", Progress: &client.Progress{Up: 1610}})
	write(client.Event{Ev: "result", Result: &client.Result{Phase: "connect", Up: 2000}})
	<-we.results
	we.mu.Lock()
	up := we.last.Up
	we.mu.Unlock()
	if up != 2000 {
		t.Errorf("up after the result = %d, want 2000", up)
	}
	pw.Close()
}

// TestReplayTrack pins how a storm-group socket judges the storm's events:
// exactly K, each once, in order, then (away) replay_complete with count K.
func TestStormConfig(t *testing.T) {
	base := func() Config {
		return Config{Targets: []string{"http://h:1"}, Sockets: 10, SessionSecret: make([]byte, 32), Redis: "h:2"}
	}
	c := base()
	c.Scenarios = []string{"replay"}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.ReplayUsers != 5 || c.ReplayShare != 1 || c.ReplayEvents != 10 || c.Scenarios[len(c.Scenarios)-1] != "replay" {
		t.Errorf("replay defaults: users %d share %v events %d scenarios %v", c.ReplayUsers, c.ReplayShare, c.ReplayEvents, c.Scenarios)
	}
	// All scenarios by default; replay only when a storm group and live users fit.
	c = base()
	if err := c.fill(); err != nil || c.Scenarios[len(c.Scenarios)-1] != "replay" {
		t.Errorf("default scenarios %v (%v)", c.Scenarios, err)
	}
	c = base()
	c.Sockets = 1
	if err := c.fill(); err != nil || c.Scenarios[len(c.Scenarios)-1] == "replay" {
		t.Errorf("default scenarios with one user %v (%v)", c.Scenarios, err)
	}
	bad := []func(*Config){
		func(c *Config) { c.Sockets = 1 },
		func(c *Config) { c.ReplayUsers = 10 },
		func(c *Config) { c.ReplayUsers = -1 },
		func(c *Config) { c.ReplayShare = 1.5 },
		func(c *Config) { c.ReplayShare = -0.5 },
		func(c *Config) { c.ReplayEvents = -1 },
	}
	for i, mod := range bad {
		c := base()
		c.Scenarios = []string{"replay"}
		mod(&c)
		if err := c.fill(); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
}

// TestBucketQuantile: herald's latency histogram, read per bucket at two
// times and summed over replicas, gives the bucket of a quantile over the
// window.
func TestBucketQuantile(t *testing.T) {
	b := func(le string) string { return deliveryLatencyBuckets + `{le="` + le + `"}` }
	reading := func(a, c, d float64) map[string]float64 {
		return map[string]float64{b("0.001"): a, b("0.01"): c, b("+Inf"): d, "process_cpu_seconds_total": 1}
	}
	before := scrape{values: []map[string]float64{reading(10, 10, 10), reading(5, 5, 5)}}
	tests := []struct {
		name  string
		after scrape
		q     float64
		want  float64
	}{
		// 100 new observations per replica: 90 ≤ 1 ms, 9 more ≤ 10 ms, 1 above.
		{"p50", scrape{values: []map[string]float64{reading(100, 109, 110), reading(95, 104, 105)}}, 0.5, 1},
		{"p99", scrape{values: []map[string]float64{reading(100, 109, 110), reading(95, 104, 105)}}, 0.99, 10},
		{"p999", scrape{values: []map[string]float64{reading(100, 109, 110), reading(95, 104, 105)}}, 0.999, math.Inf(1)},
		{"nothing new", scrape{values: []map[string]float64{reading(10, 10, 10), reading(5, 5, 5)}}, 0.99, 0},
	}
	for _, tc := range tests {
		if got := tc.after.bucketQuantile(before, deliveryLatencyBuckets, tc.q); got != tc.want {
			t.Errorf("%s: %v ms, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReplayWorkers: with replay, the live users and the storm group get
// worker processes of their own, each process under the per-process socket
// budget, and each group the whole Concurrency; without replay, users are
// dealt round-robin.
func TestStormWorkers(t *testing.T) {
	c := Config{Targets: []string{"http://h:1"}, Sockets: 50000, ReplayUsers: 25000,
		SessionSecret: make([]byte, 32), Redis: "h:2", Scenarios: []string{"connect", "replay"}}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Procs != 4 {
		t.Fatalf("Procs = %d for 25,000 live and 25,000 storm sockets, want 2 + 2", c.Procs)
	}
	r := &runner{cfg: c}
	sockets := make([]int, c.Procs)
	for i := range c.Sockets {
		u := i % c.Users
		w := r.workerOf(u)
		if storm := u >= r.stormFrom(); storm != (w >= 2) {
			t.Fatalf("user %d (storm %v) on worker %d", u, storm, w)
		}
		sockets[w]++
	}
	conc := [2]int{}
	for w, n := range sockets {
		if n > perProcSockets {
			t.Errorf("worker %d holds %d sockets, over %d", w, n, perProcSockets)
		}
		conc[w/2] += r.concurrency(w, n)
	}
	if conc[0] != c.Concurrency || conc[1] != c.Concurrency {
		t.Errorf("concurrency live %d, storm %d: want %d each", conc[0], conc[1], c.Concurrency)
	}

	c = Config{Targets: []string{"http://h:1"}, Sockets: 40000, SessionSecret: make([]byte, 32), Redis: "h:2",
		Scenarios: []string{"connect", "fanout"}}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	r = &runner{cfg: c}
	if c.Procs != 3 || r.cfg.liveProcs != 0 || r.workerOf(4) != 1 {
		t.Errorf("without replay: %d procs, %d live, user 4 on worker %d; want 3, 0, 1", c.Procs, r.cfg.liveProcs, r.workerOf(4))
	}
}
