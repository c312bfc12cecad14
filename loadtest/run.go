package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/loadtest/client"
)

// runner is one run in the parent.
type runner struct {
	cfg     Config
	ctx     context.Context
	workers []*workerEnd
	http    *http.Client
	rdb     *redis.Client
	phase   string
	phaseMu sync.Mutex
	last    uint64 // delivered at the previous progress line
	lastAt  time.Time
	tl      *timelineRecorder // nil unless cfg.Timeline; owned by the progress loop, phases under phaseMu
}

// Run plays cfg's scenarios and returns the report. The error is set when
// the run could not be made (a worker failed, the deadline passed); the
// report then holds what was measured so far.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	r := &runner{cfg: cfg, ctx: ctx, http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	defer r.http.CloseIdleConnections()
	if cfg.Redis != "" {
		opt, err := client.RedisOptions(cfg.Redis)
		if err != nil {
			return nil, err
		}
		r.rdb = redis.NewClient(opt)
		defer r.rdb.Close()
	}
	rep := &Report{Run: RunInfo{
		Targets: cfg.Targets, Sockets: cfg.Sockets, Users: cfg.Users, Procs: cfg.Procs,
		SrcIPs: len(cfg.SrcIPs), Scenarios: cfg.Scenarios, Duration: cfg.Duration.String(),
		Rate: cfg.Rate, ArrivalRate: cfg.ArrivalRate, Concurrency: cfg.Concurrency, Started: time.Now().UTC(),
	}}
	if cfg.Timeline {
		r.tl = newTimelineRecorder(cfg.Metrics)
	}
	err := r.start()
	if err == nil {
		stopProgress := r.progressLoop()
		err = r.play(rep)
		stopProgress()
	}
	if r.tl != nil {
		rep.Timeline = r.tl.finish()
	}
	r.stop(err != nil)
	rep.Run.Elapsed = time.Since(rep.Run.Started).Round(time.Millisecond).String()
	finish(rep)
	if err != nil {
		rep.OK = false
		rep.Failures = append(rep.Failures, "run aborted: "+err.Error())
	}
	return rep, err
}

func (r *runner) start() error {
	spawn := r.cfg.Spawn
	if spawn == nil {
		spawn = InProcess
	}
	shares := make([][]int, r.cfg.Procs)
	for i := range r.cfg.Sockets {
		w := r.workerOf(i % r.cfg.Users)
		shares[w] = append(shares[w], i)
	}
	for id := range r.cfg.Procs {
		wk, err := spawn(id)
		if err != nil {
			return fmt.Errorf("start worker %d: %w", id, err)
		}
		we := &workerEnd{Worker: wk, results: make(chan *client.Result, 1), armed: make(chan struct{}, 1), errs: make(chan error, 2)}
		r.workers = append(r.workers, we)
		go we.read()
		pl := &client.Plan{
			Worker: id, Targets: r.cfg.Targets, SrcIPs: r.cfg.SrcIPs, SessionSecret: r.cfg.SessionSecret,
			UserClaim: r.cfg.UserClaim, SessionCookie: r.cfg.SessionCookie, Origin: r.cfg.Origin,
			UserPrefix: r.cfg.UserPrefix, ChannelPrefix: r.cfg.ChannelPrefix, Redis: r.cfg.Redis,
			Users: r.cfg.Users, Sockets: shares[id], Concurrency: r.concurrency(id, len(shares[id])),
			ArrivalRate:  r.arrivalRate(id, len(shares[id])),
			PayloadBytes: r.cfg.PayloadBytes, DrainTimeout: r.cfg.DrainTimeout,
		}
		for _, s := range r.cfg.Scenarios {
			if s == "slow" {
				pl.SlowShare, pl.SlowRcvBuf = r.cfg.SlowShare, 4096
			}
			if s == "replay" {
				away := max(1, int(math.Ceil(r.cfg.ReplayShare*float64(r.cfg.ReplayUsers)-1e-9)))
				pl.ReplayFrom, pl.ReplayAwayTo, pl.ReplayEvents = r.stormFrom(), r.stormFrom()+away, r.cfg.ReplayEvents
			}
		}
		if err := we.send(client.Command{Op: "plan", Plan: pl}); err != nil {
			return fmt.Errorf("worker %d: %w", id, err)
		}
	}
	return r.waitAll(func(we *workerEnd) (bool, error) {
		select {
		case <-we.armed:
			return true, nil
		case err := <-we.errs:
			return false, err
		case <-r.ctx.Done():
			return false, r.ctx.Err()
		}
	})
}

// waitAll runs wait for every worker and returns the first error.
func (r *runner) waitAll(wait func(*workerEnd) (bool, error)) error {
	for i, we := range r.workers {
		if _, err := wait(we); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
	}
	return nil
}

// command sends c to every worker (with the rate split by users) and
// collects their results.
func (r *runner) command(c client.Command) ([]*client.Result, error) {
	for i, we := range r.workers {
		wc := c
		switch {
		case c.Rate > 0 && c.Op == "storm_away":
			// replay's fan-out reaches only the live users.
			wc.Rate = c.Rate * float64(r.usersOf(i, r.stormFrom())) / float64(r.stormFrom())
		case c.Rate > 0:
			wc.Rate = c.Rate * float64(r.usersOf(i, r.cfg.Users)) / float64(r.cfg.Users)
		}
		if err := we.send(wc); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
	}
	var out []*client.Result
	err := r.waitAll(func(we *workerEnd) (bool, error) {
		select {
		case res := <-we.results:
			out = append(out, res)
			return true, nil
		case err := <-we.errs:
			return false, err
		case <-r.ctx.Done():
			if errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
				return false, fmt.Errorf("the run's deadline (%s) passed", r.cfg.Deadline)
			}
			return false, fmt.Errorf("interrupted: %w", r.ctx.Err())
		}
	})
	return out, err
}

// usersOf counts the users below n that worker w holds.
func (r *runner) usersOf(w, n int) int {
	c := 0
	for u := range n {
		if r.workerOf(u) == w {
			c++
		}
	}
	return c
}

// workerOf returns the worker that holds user u's sockets. Users are dealt
// round-robin, except in a run with the replay scenario and two workers or
// more: the live users then have workers of their own (a share of the
// workers as large as their share of the users, at least one), so that the
// storm's handshakes never share a process, and its Go scheduler, with the
// sockets whose latency the storm is measured by.
func (r *runner) workerOf(u int) int {
	live := r.cfg.liveProcs
	if live == 0 {
		return u % r.cfg.Procs
	}
	if u < r.stormFrom() {
		return u % live
	}
	return live + u%(r.cfg.Procs-live)
}

// concurrency is worker id's share of Concurrency, by its sockets: a share
// of all the sockets, or with the live users apart (Config.liveProcs), of its
// group's, so that the storm has the whole Concurrency to reconnect with.
func (r *runner) concurrency(id, sockets int) int {
	of := r.cfg.Sockets
	if live := r.cfg.liveProcs; live > 0 {
		of = r.cfg.liveSockets
		if id >= live {
			of = r.cfg.Sockets - r.cfg.liveSockets
		}
	}
	return max(1, r.cfg.Concurrency*sockets/max(of, 1))
}

// arrivalRate is worker id's share of ArrivalRate, by its sockets, as
// concurrency shares Concurrency.
func (r *runner) arrivalRate(id, sockets int) float64 {
	if r.cfg.ArrivalRate <= 0 {
		return 0
	}
	of := r.cfg.Sockets
	if live := r.cfg.liveProcs; live > 0 {
		of = r.cfg.liveSockets
		if id >= live {
			of = r.cfg.Sockets - r.cfg.liveSockets
		}
	}
	return r.cfg.ArrivalRate * float64(sockets) / float64(max(of, 1))
}

// stormFrom is the first user of replay's storm group: the users below
// it are the live ones.
func (r *runner) stormFrom() int { return r.cfg.Users - r.cfg.ReplayUsers }

func (r *runner) setPhase(p string) {
	r.phaseMu.Lock()
	r.phase = p
	if r.tl != nil {
		r.tl.phase(p, time.Now())
	}
	r.phaseMu.Unlock()
}

// stop ends the workers: politely (their sockets close with 1000) unless
// kill.
func (r *runner) stop(kill bool) {
	for _, we := range r.workers {
		if !kill {
			_ = we.send(client.Command{Op: "stop"})
		}
		_ = we.In.Close()
	}
	grace := 15 * time.Second
	if kill {
		grace = 2 * time.Second // the end of their input cancels what they do
	}
	for _, we := range r.workers {
		done := make(chan struct{})
		go func() {
			_ = we.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(grace):
			r.cfg.Log.Warn("worker did not stop; killing it")
			we.Kill()
		}
	}
}

// play runs the scenarios in order.
func (r *runner) play(rep *Report) error {
	for _, name := range r.cfg.Scenarios {
		r.setPhase(name)
		before := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
		start := time.Now()
		var results []*client.Result
		var rp *StormReport
		var err error
		switch name {
		case "connect":
			results, err = r.command(client.Command{Op: "connect", Timeout: r.cfg.ConnectTimeout})
		case "fanout":
			results, err = r.command(client.Command{Op: "fanout", Duration: r.cfg.Duration, Rate: r.cfg.Rate})
		case "churn":
			results, err = r.command(client.Command{Op: "churn", Duration: r.cfg.Duration, Rate: r.cfg.Rate, Share: r.cfg.ChurnShare})
		case "slow":
			results, err = r.command(client.Command{Op: "slow", Duration: r.cfg.Duration, Rate: r.cfg.Rate, Share: r.cfg.SlowShare, Flood: max(r.cfg.SlowFlood, 0)})
		case "broadcast":
			results, err = r.broadcast()
		case "replay":
			results, rp, err = r.storm()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		after := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
		sr := merge(name, results, time.Since(start))
		sr.Server = cost(before, after)
		if sr.Server.Error != "" {
			r.cfg.Log.Warn("server cost unknown", zap.String("scenario", name), zap.String("error", sr.Server.Error))
		}
		if name == "slow" && sr.Slow != nil {
			sr.Slow.FloodBytesPerS = max(r.cfg.SlowFlood, 0)
			sr.Slow.ShedByServer = sr.Server.SlowConsumers
			sr.Slow.RSSKiBGrowth = sr.Server.RSSKiBAfter - sr.Server.RSSKiBBefore
		}
		sr.Storm = rp
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	return nil
}

// broadcast arms every worker, PUBLISHes one broadcast and waits for it.
func (r *runner) broadcast() ([]*client.Result, error) {
	// Ids grow across runs, so that a socket never mistakes an old one.
	id := uint64(time.Now().UnixNano())
	for i, we := range r.workers {
		if err := we.send(client.Command{Op: "bc_arm", ID: id}); err != nil {
			return nil, fmt.Errorf("worker %d: %w", i, err)
		}
	}
	if err := r.waitAll(func(we *workerEnd) (bool, error) {
		select {
		case <-we.armed:
			return true, nil
		case err := <-we.errs:
			return false, err
		case <-r.ctx.Done():
			return false, r.ctx.Err()
		}
	}); err != nil {
		return nil, err
	}
	payload := client.AppendBroadcast(nil, id, time.Now().UnixNano())
	if err := r.rdb.Publish(r.ctx, r.cfg.ChannelPrefix+"broadcast", payload).Err(); err != nil {
		return nil, fmt.Errorf("PUBLISH broadcast: %w", err)
	}
	return r.command(client.Command{Op: "bc_wait", ID: id, Timeout: 10 * time.Second})
}
