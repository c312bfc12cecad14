package loadtest

import (
	"fmt"
	"math"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// StormReport is the replay scenario's outcome: the storm's correctness,
// how long it took, what it did to the live sockets' latency, and what it
// cost herald. Its JSON form is the report's "replay" block.
type StormReport struct {
	EventsPerUser int     `json:"events_per_user"` // K
	StormUsers    uint64  `json:"storm_users"`     // users whose sockets all closed and came back
	StormSockets  uint64  `json:"storm_sockets"`
	StayUsers     uint64  `json:"stay_users"` // storm-group users that stayed and got the events live
	StaySockets   uint64  `json:"stay_sockets"`
	LiveSockets   uint64  `json:"live_sockets"` // the others, reached by fan-out all along
	Skipped       uint64  `json:"skipped_sockets,omitempty"`
	Appended      uint64  `json:"appended"`
	AppendErrors  uint64  `json:"append_errors"`
	AppendS       float64 `json:"append_s"`

	// Storm sockets by outcome: exactly their K events in order, then
	// replay_complete (replayed); a replay_complete after anything else
	// (wrong); resync instead; neither by the end (not_replayed).
	Replayed    uint64 `json:"replayed"`
	Wrong       uint64 `json:"wrong"`
	Resyncs     uint64 `json:"resyncs"`
	NotReplayed uint64 `json:"not_replayed"`
	StayOK      uint64 `json:"stay_ok"`
	StayBad     uint64 `json:"stay_bad"`
	// Over the storm group (resynced sockets' missing events excluded).
	Duplicates     uint64 `json:"duplicates"`
	SocketsDup     uint64 `json:"sockets_with_duplicates"`
	Missing        uint64 `json:"missing"`
	SocketsMissing uint64 `json:"sockets_with_missing"`
	OutOfOrder     uint64 `json:"out_of_order"`
	SocketsOOO     uint64 `json:"sockets_out_of_order"`
	Unexpected     uint64 `json:"unexpected_events"`
	WrongCount     uint64 `json:"wrong_count"` // replay_complete counts that were not the events the session got

	// From the storm's start (each worker's) to each storm socket's
	// replay_complete or resync.
	FirstMs  float64 `json:"first_ms"`
	MedianMs float64 `json:"median_ms"`
	LastMs   float64 `json:"last_ms"`
	StormS   float64 `json:"storm_s"` // the storm window: until the last one, or the timeout
	// Reconnects is the storm's reconnects; Handshake their token POST to
	// welcome latency.
	Reconnects uint64        `json:"reconnects"`
	Handshake  LatencyReport `json:"handshake"`

	// Live publish→deliver latency of the other sockets: while the storm
	// users were away and their events appended, just before the storm
	// (live fan-out alone), and during the storm.
	Away     LatencyReport `json:"away"`
	Before   LatencyReport `json:"before"`
	Storm    LatencyReport `json:"storm"`
	P99Ratio float64       `json:"p99_ratio"` // storm p99 / before p99

	// Server cost over the storm window, summed over the replicas.
	ServerCPUS      float64 `json:"server_cpu_s"`
	ServerBaseCores float64 `json:"server_base_cores"`      // CPU per second just before the storm (live fan-out alone)
	ServerNetCPUS   float64 `json:"server_net_cpu_s"`       // server_cpu_s minus the base rate over the storm window
	ServerEvents    float64 `json:"server_replayed_events"` // herald_inbox_replayed_events_total
	ServerResyncs   float64 `json:"server_resyncs"`         // herald_inbox_replays_total{result="resync"}
	// Per replayed event and per reconnect: net of the live fan-out at its
	// CPU rate before the storm (an underestimate when fan-out gets cheaper
	// per delivery under load, as batching makes it), and gross (the whole
	// window's CPU, live fan-out included: an overestimate).
	CPUUsPerEvent          float64 `json:"server_cpu_us_per_replayed_event"`
	CPUUsPerReconnect      float64 `json:"server_cpu_us_per_reconnect"`
	CPUUsPerEventGross     float64 `json:"server_cpu_us_per_replayed_event_gross"`
	CPUUsPerReconnectGross float64 `json:"server_cpu_us_per_reconnect_gross"`
	ServerError            string  `json:"server_error,omitempty"`
	// herald's own share of the live latency: the upper bound of the
	// herald_delivery_latency_seconds bucket (receipt at the replica to
	// the end of the socket write, every write) holding the p99 over the
	// window; -1 past the last bucket.
	ServerDeliveryP99Away   float64 `json:"server_delivery_p99_ms_away"`
	ServerDeliveryP99Before float64 `json:"server_delivery_p99_ms_before"`
	ServerDeliveryP99Storm  float64 `json:"server_delivery_p99_ms_storm"`
}

// replay runs the replay scenario's steps (see replay.go) and returns the
// last step's results, for the scenario's delivery figures, with the
// storm's report.
func (r *runner) storm() ([]*client.Result, *StormReport, error) {
	storm := uint64(time.Now().UnixNano())
	awayStart := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
	away, err := r.command(client.Command{Op: "storm_away", ID: storm, Rate: r.cfg.Rate})
	if err != nil {
		return nil, nil, err
	}
	var up int64
	for _, res := range away {
		up += res.Up
	}
	r.waitServerSockets(up)
	baseStart := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
	base, err := r.command(client.Command{Op: "storm_base", Duration: max(r.cfg.Duration/2, time.Second)})
	if err != nil {
		return nil, nil, err
	}
	stormStart := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
	stormRes, err := r.command(client.Command{Op: "storm_storm", Timeout: r.cfg.ConnectTimeout})
	if err != nil {
		return nil, nil, err
	}
	stormEnd := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
	cut, err := r.command(client.Command{Op: "storm_cut"})
	if err != nil {
		return nil, nil, err
	}
	end, err := r.command(client.Command{Op: "storm_end"})
	if err != nil {
		return nil, nil, err
	}
	rep := stormReport(r.cfg.ReplayEvents, [][]*client.Result{away, base, stormRes, cut, end})
	rep.serverCost(cost(baseStart, stormStart), cost(stormStart, stormEnd))
	if awayStart.err == nil && baseStart.err == nil && stormStart.err == nil && stormEnd.err == nil {
		rep.ServerDeliveryP99Away = finiteOr(baseStart.bucketQuantile(awayStart, deliveryLatencyBuckets, 0.99), -1)
		rep.ServerDeliveryP99Before = finiteOr(stormStart.bucketQuantile(baseStart, deliveryLatencyBuckets, 0.99), -1)
		rep.ServerDeliveryP99Storm = finiteOr(stormEnd.bucketQuantile(stormStart, deliveryLatencyBuckets, 0.99), -1)
	}
	return end, rep, nil
}

func finiteOr(v, or float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return or
	}
	return v
}

// waitServerSockets waits, up to 10 s, until the replicas hold no more
// than up sockets: herald has seen the storm users leave.
func (r *runner) waitServerSockets(up int64) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && r.ctx.Err() == nil {
		s := scrapeAll(r.ctx, r.http, r.cfg.Metrics)
		if s.err != nil || s.sum("herald_sockets") <= float64(up) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stormReport adds up the workers' parts of every step.
func stormReport(k int, steps [][]*client.Result) *StormReport {
	rep := &StormReport{EventsPerUser: k}
	var away, before, storm, hs, times client.Histogram
	var appendT, stormT time.Duration
	for _, step := range steps {
		for _, res := range step {
			p := res.Storm
			if p == nil {
				continue
			}
			rep.StormUsers += p.StormUsers
			rep.StormSockets += p.StormSockets
			rep.StayUsers += p.StayUsers
			rep.StaySockets += p.StaySockets
			rep.LiveSockets += p.LiveSockets
			rep.Skipped += p.Skipped
			rep.Appended += p.Appended
			rep.AppendErrors += p.AppendErrors
			appendT = max(appendT, p.AppendTime)
			p.Away.MergeInto(&away)
			p.Before.MergeInto(&before)
			p.Storm.MergeInto(&storm)
			p.StormHS.MergeInto(&hs)
			p.Times.MergeInto(&times)
			stormT = max(stormT, p.StormT)
			rep.Reconnects += p.Reconnects
			rep.Replayed += p.Replayed
			rep.Wrong += p.Wrong
			rep.Resyncs += p.Resyncs
			rep.NotReplayed += p.NotReplayed
			rep.StayOK += p.StayOK
			rep.StayBad += p.StayBad
			rep.Duplicates += p.Dups
			rep.SocketsDup += p.SocketsDup
			rep.Missing += p.Missing
			rep.SocketsMissing += p.SocketsMissing
			rep.OutOfOrder += p.OutOfOrder
			rep.SocketsOOO += p.SocketsOOO
			rep.Unexpected += p.Extra
			rep.WrongCount += p.BadCount
		}
	}
	var baseT time.Duration
	for _, res := range steps[1] {
		if res.Storm != nil {
			baseT = max(baseT, res.Storm.BaseT)
		}
	}
	rep.AppendS = appendT.Seconds()
	rep.StormS = stormT.Seconds()
	rep.FirstMs, rep.MedianMs, rep.LastMs = times.Quantile(0), times.Quantile(0.5), times.Quantile(1)
	rep.Handshake = latency(&hs, stormT)
	rep.Away = latency(&away, 0)
	rep.Before = latency(&before, baseT)
	rep.Storm = latency(&storm, stormT)
	if rep.Before.P99 > 0 {
		rep.P99Ratio = rep.Storm.P99 / rep.Before.P99
	}
	return rep
}

// serverCost fills the storm's server figures: base is the cost of live
// fan-out alone just before the storm, storm the cost of the storm window.
func (rep *StormReport) serverCost(base, storm *ServerCost) {
	switch {
	case storm.Error != "":
		rep.ServerError = storm.Error
		return
	case base.Error != "":
		rep.ServerError = base.Error
	}
	rep.ServerCPUS = storm.CPUSeconds
	rep.ServerBaseCores = base.CPUUtilisation
	rep.ServerNetCPUS = max(storm.CPUSeconds-base.CPUUtilisation*storm.Wall, 0)
	rep.ServerEvents, rep.ServerResyncs = storm.InboxReplayed, storm.InboxResyncs
	events := storm.InboxReplayed
	if events == 0 {
		events = float64(rep.Replayed) * float64(rep.EventsPerUser)
	}
	if events > 0 {
		rep.CPUUsPerEvent = rep.ServerNetCPUS * 1e6 / events
		rep.CPUUsPerEventGross = rep.ServerCPUS * 1e6 / events
	}
	if storm.Handshakes > 0 {
		rep.CPUUsPerReconnect = rep.ServerNetCPUS * 1e6 / storm.Handshakes
		rep.CPUUsPerReconnectGross = rep.ServerCPUS * 1e6 / storm.Handshakes
	}
}

// failures returns the replay's correctness failures.
func (rep *StormReport) failures() []string {
	var f []string
	if rep.StormSockets == 0 {
		f = append(f, "replay: no storm socket was up to leave (is --replay-users right?)")
	}
	if rep.AppendErrors > 0 {
		f = append(f, fmt.Sprintf("replay: %d inbox appends failed", rep.AppendErrors))
	}
	if n := rep.StormSockets - min(rep.Replayed, rep.StormSockets); n > 0 {
		f = append(f, fmt.Sprintf("replay: %d of %d storm sockets did not get exactly their %d events in order then replay_complete (%d resync, %d without replay_complete or resync, %d with a wrong replay)",
			n, rep.StormSockets, rep.EventsPerUser, rep.Resyncs, rep.NotReplayed, rep.Wrong))
	}
	if rep.StayBad > 0 {
		f = append(f, fmt.Sprintf("replay: %d sockets that stayed did not get their %d events live exactly once, in order", rep.StayBad, rep.EventsPerUser))
	}
	if rep.Resyncs > 0 {
		f = append(f, fmt.Sprintf("replay: herald answered %d reconnects with resync: %d events per user above its --inbox-max-len, a replay over half its --max-queue-bytes, --inbox=false, or the inbox lost with Redis", rep.Resyncs, rep.EventsPerUser))
	}
	if rep.Duplicates+rep.Missing+rep.OutOfOrder+rep.Unexpected+rep.WrongCount > 0 {
		f = append(f, fmt.Sprintf("replay: %d events duplicated (%d sockets), %d missing (%d sockets), %d out of order (%d sockets), %d unexpected, %d wrong replay_complete counts",
			rep.Duplicates, rep.SocketsDup, rep.Missing, rep.SocketsMissing, rep.OutOfOrder, rep.SocketsOOO, rep.Unexpected, rep.WrongCount))
	}
	return f
}

// writeText writes the replay's lines of the text report.
func (rep *StormReport) writeText(p func(string, ...any)) {
	p("  storm         %d users (%d sockets) closed, got %d events each in their inbox (%d appended in %.2f s, %d errors), and reconnected at once with since; %d users (%d sockets) stayed; %d live sockets",
		rep.StormUsers, rep.StormSockets, rep.EventsPerUser, rep.Appended, rep.AppendS, rep.AppendErrors, rep.StayUsers, rep.StaySockets, rep.LiveSockets)
	p("  replayed      %d of %d storm sockets exactly, in order, then replay_complete; %d resync, %d neither, %d wrong; stayed %d ok, %d not",
		rep.Replayed, rep.StormSockets, rep.Resyncs, rep.NotReplayed, rep.Wrong, rep.StayOK, rep.StayBad)
	p("  correctness   duplicated %d (%d sockets), missing %d (%d sockets), out of order %d (%d sockets), unexpected %d, wrong counts %d",
		rep.Duplicates, rep.SocketsDup, rep.Missing, rep.SocketsMissing, rep.OutOfOrder, rep.SocketsOOO, rep.Unexpected, rep.WrongCount)
	p("  storm time    replay_complete (or resync) first %.1f ms, median %.1f ms, last %.1f ms after the storm began; %d reconnects, handshake p50 %.2f ms p99 %.2f ms",
		rep.FirstMs, rep.MedianMs, rep.LastMs, rep.Reconnects, rep.Handshake.P50, rep.Handshake.P99)
	p("  live latency  before the storm p50 %.2f ms p99 %.2f ms p999 %.2f ms (%d deliveries); during it p50 %.2f ms p99 %.2f ms p999 %.2f ms (%d) (p99 ×%.2f)",
		rep.Before.P50, rep.Before.P99, rep.Before.P999, rep.Before.Count, rep.Storm.P50, rep.Storm.P99, rep.Storm.P999, rep.Storm.Count, rep.P99Ratio)
	if rep.ServerError != "" {
		p("  storm cost    unknown: %s", rep.ServerError)
		return
	}
	p("  storm cost    server CPU %.2f s in the storm window (%.0f events replayed, %.0f resync): %.1f µs per replayed event, %.1f µs per reconnect; beyond the live fan-out's %.2f cores before the storm, %.2f s: %.1f µs per replayed event, %.1f µs per reconnect",
		rep.ServerCPUS, rep.ServerEvents, rep.ServerResyncs, rep.CPUUsPerEventGross, rep.CPUUsPerReconnectGross,
		rep.ServerBaseCores, rep.ServerNetCPUS, rep.CPUUsPerEvent, rep.CPUUsPerReconnect)
	p("  herald's part receipt→written p99 ≤ %s while away, ≤ %s before the storm, ≤ %s during it (herald_delivery_latency_seconds buckets)",
		bucketText(rep.ServerDeliveryP99Away), bucketText(rep.ServerDeliveryP99Before), bucketText(rep.ServerDeliveryP99Storm))
}

func bucketText(ms float64) string {
	switch {
	case ms < 0:
		return "∞ (past the last bucket)"
	case ms == 0:
		return "? (nothing observed)"
	}
	return fmt.Sprintf("%.1f ms", ms)
}
