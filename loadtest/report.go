package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
	"github.com/herald-gw/herald/loadtest/threshold"
)

// Report is a run's result. Its JSON form is what --json writes; the
// top-level blocks are the headline figures (sockets and handshake from
// connect, delivery from fanout, broadcast, replay, server cost from each
// one's own scenario); Scenarios holds every scenario's own figures.
type Report struct {
	Run       RunInfo          `json:"run"`
	Sockets   SocketsReport    `json:"sockets"`
	Handshake LatencyReport    `json:"handshake"`
	Delivery  *DeliveryReport  `json:"delivery,omitempty"`
	Broadcast *BroadcastReport `json:"broadcast,omitempty"`
	Storm     *StormReport     `json:"replay,omitempty"`
	Server    ServerReport     `json:"server"`
	Scenarios []ScenarioReport `json:"scenarios"`
	// Failures are the correctness conditions that failed: a socket not
	// welcomed, a message lost or duplicated while its socket was
	// connected, a broadcast not received, a publish that failed, a storm
	// socket that did not get exactly its events in order then
	// replay_complete.
	Failures []string `json:"failures"`
	Warnings []string `json:"warnings,omitempty"`
	OK       bool     `json:"ok"`
	// Thresholds are the --threshold criteria checked against this
	// report, set by the caller after Run.
	Thresholds []threshold.Result `json:"thresholds,omitempty"`
	// Timeline is the run sampled about once a second, with
	// Config.Timeline; it is for the HTML report, not the JSON.
	Timeline *Timeline `json:"-"`
}

// RunInfo says what was run.
type RunInfo struct {
	Targets   []string `json:"targets"`
	Sockets   int      `json:"sockets"`
	Users     int      `json:"users"`
	Procs     int      `json:"procs"`
	SrcIPs    int      `json:"src_ips"`
	Scenarios []string `json:"scenarios"`
	Duration  string   `json:"duration"`
	Rate      float64  `json:"rate"`
	// ArrivalRate is sockets opened a second in an open loop; 0 for the
	// closed loop (Concurrency handshakes in flight).
	ArrivalRate float64   `json:"arrival_rate,omitempty"`
	Concurrency int       `json:"concurrency"`
	Started     time.Time `json:"started"`
	Elapsed     string    `json:"elapsed"`
}

// SocketsReport is the connect scenario's outcome.
type SocketsReport struct {
	OK       int64             `json:"ok"`
	Failed   int64             `json:"failed"`
	FailedBy map[string]uint64 `json:"failed_by"` // failed attempts (retried or not), by HTTP status or close code
}

// LatencyReport is a latency distribution in milliseconds.
type LatencyReport struct {
	Count uint64  `json:"count"`
	PerS  float64 `json:"per_s"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func latency(h *client.Histogram, elapsed time.Duration) LatencyReport {
	l := LatencyReport{Count: h.Count(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), P999: h.Quantile(0.999), Max: h.Quantile(1)}
	if s := elapsed.Seconds(); s > 0 {
		l.PerS = float64(h.Count()) / s
	}
	return l
}

// DeliveryReport is a fan-out's outcome. Sent counts the deliveries that
// had to happen: for each socket session, the messages published to its
// user after its welcome (up to the last one it received when the session
// ended early). Lost = sent − received of those.
type DeliveryReport struct {
	Published     uint64  `json:"published"`
	PublishErrors uint64  `json:"publish_errors"`
	Sent          uint64  `json:"sent"`
	Delivered     uint64  `json:"delivered"`
	Lost          uint64  `json:"lost"`
	LostResync    uint64  `json:"lost_announced_by_resync"` // missing before a {"type":"resync"}: the contract allows it
	Resyncs       uint64  `json:"resync_frames"`
	Duplicates    uint64  `json:"duplicates"`
	OutOfOrder    uint64  `json:"out_of_order"`
	SocketsLost   uint64  `json:"sockets_with_loss"`
	SocketsDup    uint64  `json:"sockets_with_duplicates"`
	SocketsOOO    uint64  `json:"sockets_out_of_order"`
	MaxLost       uint64  `json:"max_lost_per_socket"`
	PerS          float64 `json:"per_s"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	P999          float64 `json:"p999_ms"`
	Max           float64 `json:"max_ms"`
}

// BroadcastReport is the time from one PUBLISH broadcast to its arrival.
type BroadcastReport struct {
	Sockets  uint64  `json:"sockets"`
	Missed   uint64  `json:"missed"`
	FirstMs  float64 `json:"first_ms"`
	MedianMs float64 `json:"median_ms"`
	LastMs   float64 `json:"last_ms"`
	// Arrival is the arrival curve: for each whole percent of the sockets
	// that got it, the ms after the PUBLISH by which they had.
	Arrival []ArrivalPoint `json:"arrival,omitempty"`
}

// ArrivalPoint is one point of a broadcast's arrival curve.
type ArrivalPoint struct {
	Share float64 `json:"share"` // 0..1 of the sockets that got it
	Ms    float64 `json:"ms"`
}

// SlowReport is the slow scenario's outcome.
type SlowReport struct {
	Slow           uint64  `json:"slow"`
	Flooded        uint64  `json:"flood_messages"`
	Shed           uint64  `json:"shed"` // slow sockets herald closed: 4009, or an end without close frame behind a full buffer
	StillSlow      uint64  `json:"still_slow_at_end"`
	ShedByServer   float64 `json:"shed_by_server"` // herald_slow_consumers_total over the scenario
	RSSKiBGrowth   float64 `json:"server_rss_growth_kib"`
	BaselineP99    float64 `json:"baseline_p99_ms"`
	OthersP99      float64 `json:"others_p99_ms"`
	P99Ratio       float64 `json:"p99_ratio"`
	FloodBytesPerS float64 `json:"flood_bytes_per_s"`
}

// ServerReport is the headline server cost, summed over the replicas.
type ServerReport struct {
	RSSKiBPerSocket   float64 `json:"rss_kib_per_socket"`
	CPUUsPerHandshake float64 `json:"cpu_us_per_handshake"`
	CPUUsPerDelivery  float64 `json:"cpu_us_per_delivery"`
	Error             string  `json:"error,omitempty"`
}

// ScenarioReport is one scenario's own figures.
type ScenarioReport struct {
	Name    string `json:"name"`
	Elapsed string `json:"elapsed"`
	// LastWelcome is the time from the scenario's start to the last
	// socket's welcome (connect).
	LastWelcome string            `json:"last_welcome,omitempty"`
	Up          int64             `json:"sockets_up_at_end"`
	FailedBy    map[string]uint64 `json:"failed_by,omitempty"`
	Closed      map[string]uint64 `json:"sessions_ended,omitempty"`
	Reconnects  uint64            `json:"reconnects,omitempty"`
	Handshake   *LatencyReport    `json:"handshake,omitempty"`
	Delivery    *DeliveryReport   `json:"delivery,omitempty"`
	Broadcast   *BroadcastReport  `json:"broadcast,omitempty"`
	Slow        *SlowReport       `json:"slow,omitempty"`
	Storm       *StormReport      `json:"replay,omitempty"`
	Server      *ServerCost       `json:"server,omitempty"`
	Client      *ClientCost       `json:"load_tester,omitempty"`
}

// ClientCost is what the load tester's workers spent during a scenario: on
// a shared machine, the CPU it takes is CPU herald does not get.
type ClientCost struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	Cores      float64 `json:"cpu_cores"`
	RSSKiB     float64 `json:"rss_kib"`
}

// WriteJSON writes r to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteText writes the human report.
func (r *Report) WriteText(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("herald load test: %d sockets, %d users, %d worker process(es), targets %s", r.Run.Sockets, r.Run.Users, r.Run.Procs, strings.Join(r.Run.Targets, " "))
	p("scenarios %s, %s each, rate %s, took %s", strings.Join(r.Run.Scenarios, ","), r.Run.Duration, rateText(r.Run.Rate), r.Run.Elapsed)
	if r.Run.ArrivalRate > 0 {
		p("sockets opened in an open loop at %.0f a second (connect, replay's storm)", r.Run.ArrivalRate)
	} else {
		p("sockets opened in a closed loop, %d handshakes in flight", r.Run.Concurrency)
	}
	for _, s := range r.Scenarios {
		p("")
		p("== %s (%s, %d sockets up at the end)", s.Name, s.Elapsed, s.Up)
		if h := s.Handshake; h != nil && h.Count > 0 {
			p("  handshakes    %d at %.0f/s; latency p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms", h.Count, h.PerS, h.P50, h.P99, h.P999, h.Max)
		}
		if s.Name == "connect" {
			p("  welcomed      %d; refused %s; last welcome %s after the start", s.Up, refusedText(s.FailedBy), orDash(s.LastWelcome))
		}
		if s.Reconnects > 0 {
			p("  reconnects    %d (client-initiated, fresh token each)", s.Reconnects)
		}
		if len(s.FailedBy) > 0 {
			p("  failed tries  %s", mapText(s.FailedBy))
		}
		if len(s.Closed) > 0 {
			p("  sessions end  %s", mapText(s.Closed))
		}
		if d := s.Delivery; d != nil {
			p("  published     %d (%d errors); deliveries due %d, received %d, %.0f/s", d.Published, d.PublishErrors, d.Sent, d.Delivered, d.PerS)
			p("  latency       publish→deliver p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms", d.P50, d.P99, d.P999, d.Max)
			if d.Resyncs > 0 {
				p("  resync        %d resync frames (herald lost its broker); %d deliveries not received when they came, excused as the contract allows", d.Resyncs, d.LostResync)
			}
			p("  correctness   lost %d (%d sockets, at most %d on one), duplicated %d (%d sockets), out of order %d (%d sockets)",
				d.Lost, d.SocketsLost, d.MaxLost, d.Duplicates, d.SocketsDup, d.OutOfOrder, d.SocketsOOO)
		}
		if b := s.Broadcast; b != nil {
			p("  broadcast     %d sockets got it (%d missed): first %.2f ms, median %.2f ms, last %.2f ms", b.Sockets, b.Missed, b.FirstMs, b.MedianMs, b.LastMs)
		}
		if sl := s.Slow; sl != nil {
			p("  slow          %d sockets stopped reading (flooded with %.0f KiB/s each, %d messages of 32 KiB); %d shed by herald (herald counted %.0f 4009s); %d still open at the end",
				sl.Slow, sl.FloodBytesPerS/1024, sl.Flooded, sl.Shed, sl.ShedByServer, sl.StillSlow)
			p("  others' p99   %.2f ms with slow sockets vs %.2f ms without (×%.2f)", sl.OthersP99, sl.BaselineP99, sl.P99Ratio)
		}
		if rp := s.Storm; rp != nil {
			rp.writeText(p)
		}
		if c := s.Server; c != nil {
			if c.Error != "" {
				p("  server        unknown: %s", c.Error)
			} else {
				line := fmt.Sprintf("  server        CPU %.2f s (%.2f cores)", c.CPUSeconds, c.CPUUtilisation)
				if c.Handshakes > 0 && s.Name == "connect" {
					line += fmt.Sprintf(", %.1f µs per handshake", c.CPUUsPerHS)
				}
				if c.Deliveries > 0 && s.Name != "connect" {
					line += fmt.Sprintf(", %.2f µs per delivery", c.CPUUsPerMsg)
				}
				line += fmt.Sprintf("; RSS %.1f → %.1f MiB", c.RSSKiBBefore/1024, c.RSSKiBAfter/1024)
				if c.RSSKiBPerSock != 0 {
					line += fmt.Sprintf(" (%.2f KiB per socket)", c.RSSKiBPerSock)
				}
				p("%s", line)
				for _, rc := range c.Replicas {
					line := fmt.Sprintf("    %-40s CPU %.2f s", rc.URL, rc.CPUSeconds)
					if rc.Handshakes > 0 && s.Name == "connect" {
						line += fmt.Sprintf(", %.1f µs/handshake", rc.CPUUsPerHS)
					}
					if rc.Deliveries > 0 && s.Name != "connect" {
						line += fmt.Sprintf(", %.2f µs/delivery", rc.CPUUsPerMsg)
					}
					if rc.RSSKiBPerSock != 0 {
						line += fmt.Sprintf(", %.2f KiB/socket", rc.RSSKiBPerSock)
					}
					p("%s", line)
				}
			}
		}
		if c := s.Client; c != nil {
			p("  load tester   CPU %.2f s (%.2f cores); RSS %.1f MiB", c.CPUSeconds, c.Cores, c.RSSKiB/1024)
		}
	}
	p("")
	p("summary: sockets ok %d, failed %d; server %.2f KiB RSS per socket, %.1f µs CPU per handshake, %.2f µs CPU per delivery",
		r.Sockets.OK, r.Sockets.Failed, r.Server.RSSKiBPerSocket, r.Server.CPUUsPerHandshake, r.Server.CPUUsPerDelivery)
	for _, w := range r.Warnings {
		p("warning: %s", w)
	}
	if len(r.Thresholds) > 0 {
		p("thresholds")
		for _, t := range r.Thresholds {
			p("  %s", t)
		}
	}
	crossed := threshold.Failed(r.Thresholds)
	switch {
	case r.OK && !crossed:
		p("result: OK")
	case r.OK:
		p("result: FAILED: thresholds crossed (every correctness check passed)")
	default:
		for _, f := range r.Failures {
			p("FAILED: %s", f)
		}
	}
}

func rateText(r float64) string {
	if r <= 0 {
		return "flat out"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func mapText(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

// refusedText lists the attempts the server refused, by close code or
// HTTP status ("none" when it refused none); the rest of failedBy are
// the client's or the network's.
func refusedText(failedBy map[string]uint64) string {
	refused := map[string]uint64{}
	for k, v := range failedBy {
		if strings.HasPrefix(k, "close_") || strings.HasPrefix(k, "ws_http_") || strings.HasPrefix(k, "token_http_") {
			refused[k] = v
		}
	}
	if len(refused) == 0 {
		return "none"
	}
	return mapText(refused)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
