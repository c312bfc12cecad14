package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestHTMLReportAndThresholds: a run against two replicas with --html and
// two thresholds, one of which cannot hold. The run exits 3 (every
// correctness check passed, a threshold was crossed), the text and JSON
// reports say which, and the page marks it and draws every chart with data
// in headless Chromium, with nothing fetched and nothing logged.
func TestHTMLReportAndThresholds(t *testing.T) {
	r, hs := startReplicas(t, 2)
	page := filepath.Join(t.TempDir(), "report.html")
	res := runLoadtest(t, "--target", "http://"+hs[0].Addr, "--target", "http://"+hs[1].Addr,
		"--redis", r.URL(), "--sockets", "200", "--scenario", "connect,fanout,broadcast",
		"--rate", "400", "--duration", "3s",
		"--threshold", "delivery.p99_ms<0.000001", "--threshold", "sockets.failed==0",
		"--html", page)
	if res.code != 3 {
		t.Fatalf("exit %d; want 3 (a threshold crossed)\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, "FAIL delivery.p99_ms<0.000001") || !strings.Contains(res.stdout, "ok   sockets.failed==0 (0)") ||
		!strings.Contains(res.stdout, "result: FAILED: thresholds crossed") {
		t.Errorf("text report does not give the thresholds:\n%s", res.stdout)
	}
	ths, _ := res.report["thresholds"].([]any)
	if len(ths) != 2 || ths[0].(map[string]any)["ok"] != false || ths[1].(map[string]any)["ok"] != true {
		t.Errorf("JSON thresholds %v", res.report["thresholds"])
	}

	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), testSessionSecret) {
		t.Error("the page shows the session secret")
	}
	if !strings.Contains(string(b), "✗ crossed") {
		t.Error("the page does not mark the crossed threshold")
	}
	dom, pageLog := testenv.RenderPage(t, page)
	if !strings.Contains(dom, `data-rendered="true"`) || strings.Contains(dom, "data-errors=") {
		t.Fatalf("the page's script failed:\n%s", regexp.MustCompile(`(?s)<p id="errors">.*?</p>`).FindString(dom))
	}
	for _, id := range []string{"chart-connect", "chart-latency", "chart-deliveries", "chart-cpu", "chart-rss", "chart-broadcast"} {
		m := regexp.MustCompile(`id="` + id + `" data-points="(\d+)"`).FindStringSubmatch(dom)
		if n := 0; m != nil {
			n, _ = strconv.Atoi(m[1])
			if n == 0 {
				t.Errorf("%s drew no data", id)
			}
		} else {
			t.Errorf("%s: not drawn", id)
		}
	}
	// Both replicas have their own CPU and memory lines.
	if n := strings.Count(dom, `data-series="http://`); n != 4 {
		t.Errorf("%d per-replica lines; want CPU and RSS for each of the 2 replicas", n)
	}
	for _, line := range pageLog {
		t.Errorf("chromium logged: %s", line)
	}
}

// TestThresholdSyntaxRefused: a threshold the tool cannot read stops the
// run before it starts (exit 2), naming it.
func TestThresholdSyntaxRefused(t *testing.T) {
	code := run([]string{"--target", "http://127.0.0.1:1", "--session-secret", testSessionSecret, "--threshold", "p(99)<10"}, &strings.Builder{}, &strings.Builder{})
	if code != 2 {
		t.Errorf("exit %d; want 2", code)
	}
}
