package htmlreport

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// sample is a report with every chart's data, one threshold crossed.
func sample() Report {
	r := Report{
		Command: "loadtest --target http://127.0.0.1:8081 --sockets 2000 --html report.html",
		Started: time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC),
		Elapsed: 21 * time.Second,
		Summary: []Row{
			{"connect", "sockets", "2000 ok, 0 failed"},
			{"connect", "handshake", "p50 12 ms, p99 40 ms"},
			{"fanout", "latency", "p50 0.8 ms, p99 12 ms"},
			{"fanout", "<script>alert(1)</script>", "escaped"},
		},
		Checks: []Check{{Expr: "delivery.p99_ms<10", Actual: "12", OK: false}, {Expr: "sockets.failed==0", Actual: "0", OK: true}},
		Notes:  []string{"threshold crossed: delivery.p99_ms<10 (12)"},
		Phases: []Phase{{"connect", 0, 6}, {"fanout", 6, 16}, {"broadcast", 16, 21}},
		Replicas: []ReplicaSeries{
			{Name: "http://127.0.0.1:8081/metrics"}, {Name: "http://127.0.0.1:8082/metrics"},
		},
	}
	for i := range 21 {
		t := float64(i)
		s := Sample{T: t, Up: int64(min(2000, 400*i)), Welcomed: 400, P50: math.NaN(), P90: math.NaN(), P99: math.NaN(), Max: math.NaN()}
		if i >= 6 && i < 16 {
			s.Deliveries, s.P50, s.P90, s.P99, s.Max = 2000, 0.8, 3, 12, 20
		}
		r.Timeline = append(r.Timeline, s)
		for k := range r.Replicas {
			r.Replicas[k].Samples = append(r.Replicas[k].Samples, ReplicaSample{T: t, CPU: 0.3 + 0.1*float64(k), RSSMiB: 20 + t, Sockets: float64(s.Up / 2)})
		}
	}
	r.Replicas[1].Samples = append(r.Replicas[1].Samples, ReplicaSample{T: 21, CPU: math.NaN()}) // a failed scrape
	r.Replicas = append(r.Replicas, ReplicaSeries{Name: "http://127.0.0.1:8083/metrics"})        // never answered
	for _, ms := range []float64{1, 5, 20, 60, 120} {
		r.Broadcast = append(r.Broadcast, Arrival{Ms: ms, Share: math.Min(1, ms/120)})
	}
	return r
}

func TestWriteSelfContained(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, sample()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	// Nothing is fetched at view time: no external script, style, image
	// or font (the SVG namespace is a name, not a fetch).
	if m := regexp.MustCompile(`(?i)(src|href)\s*=|url\(|@import|<link`).FindString(page); m != "" {
		t.Errorf("the page references something to load: %q", m)
	}
	if strings.Contains(page, "<script>alert(1)") {
		t.Error("a summary label was not escaped")
	}
	if !strings.Contains(page, "✗ crossed") || !strings.Contains(page, `class="verdict bad"`) {
		t.Error("the crossed threshold or the failed verdict is not marked")
	}
	if err := Write(&b, Report{}); err != ErrNoData {
		t.Errorf("empty report: %v, want ErrNoData", err)
	}
}

// TestPageInChromium renders the page in headless Chromium with the
// network cut off and checks that every chart drew data and that no script
// error or console message occurred.
func TestPageInChromium(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, sample()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dom, pageLog := testenv.RenderPage(t, path)
	if !strings.Contains(dom, `data-rendered="true"`) {
		t.Fatalf("the page's script did not finish:\n%s\n%s", tail(dom), strings.Join(pageLog, "\n"))
	}
	if strings.Contains(dom, `data-errors=`) {
		t.Errorf("script errors: %s", regexp.MustCompile(`(?s)<p id="errors">.*?</p>`).FindString(dom))
	}
	for _, id := range []string{"chart-connect", "chart-latency", "chart-deliveries", "chart-cpu", "chart-rss", "chart-broadcast"} {
		m := regexp.MustCompile(`id="` + id + `" data-points="(\d+)"`).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("%s: no data-points attribute", id)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Errorf("%s drew no points", id)
		}
		if !regexp.MustCompile(`id="` + id + `"[^>]*><svg[^>]*>.*?<path `).MatchString(dom) {
			t.Errorf("%s has no line", id)
		}
	}
	for _, line := range pageLog {
		t.Errorf("chromium logged: %s", line)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
