package htmlreport

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"time"
)

// Report is what the page shows.
type Report struct {
	Title   string    // the page's heading; empty: "herald load test"
	Command string    // the command line that ran, shown under the title
	Started time.Time // wall clock at the start
	Elapsed time.Duration
	OK      bool     // every correctness check and threshold held
	Summary []Row    // the summary table, in order
	Checks  []Check  // the thresholds given with --threshold
	Notes   []string // failures and warnings, shown in a list

	Timeline  []Sample        // about one a second over the whole run
	Phases    []Phase         // the scenarios, shaded on the time charts
	Replicas  []ReplicaSeries // one per --metrics URL
	Broadcast []Arrival       // the broadcast's arrival curve; empty without broadcast
}

// Row is a line of the summary table.
type Row struct {
	Section string // a heading row is written when it changes
	Label   string
	Value   string
}

// Check is one threshold's outcome.
type Check struct {
	Expr   string
	Actual string // "" when the report lacked the figure
	OK     bool
}

// Sample is the load tester's state at T seconds after the start.
type Sample struct {
	T          float64 `json:"t"`
	Up         int64   `json:"up"`         // sockets open
	Welcomed   float64 `json:"welcomed"`   // welcomes per second over the last interval
	Refused    float64 `json:"refused"`    // failed attempts per second (HTTP errors, refusals, close codes)
	Deliveries float64 `json:"deliveries"` // messages received per second
	P50        float64 `json:"p50"`        // publish→deliver latency over the last interval, ms; NaN when none
	P90        float64 `json:"p90"`
	P99        float64 `json:"p99"`
	Max        float64 `json:"max"`
}

// Phase is a scenario's span, in seconds from the start.
type Phase struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// ReplicaSeries is one server's CPU and memory over time.
type ReplicaSeries struct {
	Name    string          `json:"name"` // its --metrics URL
	Samples []ReplicaSample `json:"samples"`
}

// ReplicaSample is a server's state at T seconds.
type ReplicaSample struct {
	T       float64 `json:"t"`
	CPU     float64 `json:"cpu"`     // cores used over the last interval
	RSSMiB  float64 `json:"rss_mib"` // process_resident_memory_bytes
	Sockets float64 `json:"sockets"` // herald_sockets
}

// Arrival is a point of the broadcast's arrival curve: Share of the sockets
// had the message Ms milliseconds after the PUBLISH.
type Arrival struct {
	Ms    float64 `json:"ms"`
	Share float64 `json:"share"` // 0..1
}

// ErrNoData is returned for a report with nothing to show.
var ErrNoData = errors.New("htmlreport: the report has neither a summary nor a timeline")

//go:embed page.html
var pageHTML string

var page = template.Must(template.New("page").Parse(pageHTML))

// Write renders r as one HTML page.
func Write(w io.Writer, r Report) error {
	if len(r.Summary) == 0 && len(r.Timeline) == 0 {
		return ErrNoData
	}
	if r.Title == "" {
		r.Title = "herald load test"
	}
	data, err := json.Marshal(chartData{
		Timeline:  finite(r.Timeline),
		Phases:    r.Phases,
		Replicas:  finiteReplicas(r.Replicas),
		Broadcast: finiteArrivals(r.Broadcast),
	})
	if err != nil {
		return fmt.Errorf("htmlreport: %w", err)
	}
	failed := 0
	for _, c := range r.Checks {
		if !c.OK {
			failed++
		}
	}
	return page.Execute(w, view{
		Report:       r,
		StartedText:  r.Started.UTC().Format("2006-01-02 15:04:05 UTC"),
		ElapsedText:  r.Elapsed.Round(time.Millisecond).String(),
		FailedChecks: failed,
		// json.Marshal escapes <, > and &, so the data cannot close the
		// script element it is written into.
		Data: template.JS(data),
	})
}

type view struct {
	Report
	StartedText  string
	ElapsedText  string
	FailedChecks int
	Data         template.JS
}

type chartData struct {
	Timeline  []sampleJSON    `json:"timeline"`
	Phases    []Phase         `json:"phases"`
	Replicas  []ReplicaSeries `json:"replicas"`
	Broadcast []Arrival       `json:"broadcast"`
}

// sampleJSON is a Sample whose missing latencies are null (JSON has no NaN).
type sampleJSON struct {
	T          float64  `json:"t"`
	Up         int64    `json:"up"`
	Welcomed   float64  `json:"welcomed"`
	Refused    float64  `json:"refused"`
	Deliveries float64  `json:"deliveries"`
	P50        *float64 `json:"p50"`
	P90        *float64 `json:"p90"`
	P99        *float64 `json:"p99"`
	Max        *float64 `json:"max"`
}

func finite(ss []Sample) []sampleJSON {
	out := make([]sampleJSON, len(ss))
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	for i, s := range ss {
		out[i] = sampleJSON{T: s.T, Up: s.Up, Welcomed: s.Welcomed, Refused: s.Refused, Deliveries: s.Deliveries,
			P50: num(s.P50), P90: num(s.P90), P99: num(s.P99), Max: num(s.Max)}
	}
	return out
}

func isFinite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// finiteReplicas drops samples JSON cannot carry (a scrape that failed).
func finiteReplicas(rs []ReplicaSeries) []ReplicaSeries {
	out := make([]ReplicaSeries, len(rs))
	for i, r := range rs {
		out[i].Name = r.Name
		out[i].Samples = []ReplicaSample{} // [] in JSON, never null
		for _, s := range r.Samples {
			if isFinite(s.T, s.CPU, s.RSSMiB, s.Sockets) {
				out[i].Samples = append(out[i].Samples, s)
			}
		}
	}
	return out
}

func finiteArrivals(as []Arrival) []Arrival {
	var out []Arrival
	for _, a := range as {
		if isFinite(a.Ms, a.Share) {
			out = append(out, a)
		}
	}
	return out
}
