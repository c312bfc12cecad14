package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// The binaries are built without the race detector even under -race: the
// test checks the load tester's verdict against real processes, and 2,000
// sockets through race-instrumented binaries would take minutes.
var heraldBin, loadtestBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loadtest-bin-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		for pkg, out := range map[string]*string{"./cmd/herald": &heraldBin, "./cmd/loadtest": &loadtestBin} {
			if *out, err = goBuild(dir, pkg); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func goBuild(dir, pkg string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

const testSessionSecret = "loadtest-session-secret-0123456789abcdef"

// startReplicas runs n herald replicas on one private redis-server.
func startReplicas(t *testing.T, n int, extraEnv ...string) (*testenv.Redis, []*testenv.Herald) {
	r := testenv.StartRedis(t)
	var hs []*testenv.Herald
	for i := range n {
		addr := testenv.FreeAddr(t)
		hs = append(hs, testenv.StartHerald(t, heraldBin, addr, replicaEnv(r, addr, i, extraEnv)))
	}
	return r, hs
}

func replicaEnv(r *testenv.Redis, addr string, i int, extra []string) []string {
	return append([]string{
		"HERALD_ADDR=" + addr,
		"HERALD_REDIS_URL=" + r.URL(),
		"HERALD_SESSION_SECRET=" + testSessionSecret,
		"HERALD_WS_TOKEN_SECRET=loadtest-ws-token-secret-0123456789abcdef",
		fmt.Sprintf("HERALD_NODE_ID=h%d", i+1),
		"HERALD_LOG_LEVEL=warn",
	}, extra...)
}

type result struct {
	code   int
	stdout string
	stderr string
	report map[string]any
}

// runLoadtest runs the CLI with args plus --json and returns what it said.
func runLoadtest(t *testing.T, args ...string) result {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(testSessionSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(loadtestBin, append(args, "--json", jsonPath, "--session-secret-file", secretFile)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run loadtest: %v", err)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("no JSON report (exit %d): %v\nstdout:\n%s\nstderr:\n%s", res.code, err, res.stdout, res.stderr)
	}
	if err := json.Unmarshal(b, &res.report); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, b)
	}
	return res
}

// num returns the number at a dotted path of the report.
func num(t *testing.T, rep map[string]any, path string) float64 {
	t.Helper()
	var v any = rep
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("report: %s: no object at %q", path, k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("report has no %s", path)
		}
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("report: %s = %v, not a number", path, v)
	}
	return f
}

// TestLoadTestTwoReplicas is the CI load test: 2,000 sockets from two
// worker processes against two replicas on Redis. Every socket must be
// welcomed and every message delivered exactly once, in fan-out, broadcast
// and churn; in a small reconnect storm (replay) every storm socket must get
// its 10 inbox events exactly once, in order, then replay_complete, while
// fan-out to the others goes on; the JSON report must hold the documented
// keys.
func TestLoadTestTwoReplicas(t *testing.T) {
	r, hs := startReplicas(t, 2)
	res := runLoadtest(t,
		"--target", "http://"+hs[0].Addr, "--target", "http://"+hs[1].Addr,
		"--sockets", "2000", "--users", "1500", "--procs", "2",
		"--redis", r.URL(), "--scenario", "connect,fanout,broadcast,churn,replay",
		"--duration", "3s", "--rate", "2000", "--concurrency", "64",
		"--replay-users", "600", "--replay-share", "0.75",
		"--deadline", "120s",
	)
	if res.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	rep := res.report
	if got := num(t, rep, "sockets.ok"); got != 2000 {
		t.Errorf("sockets.ok = %v, want 2000", got)
	}
	if got := num(t, rep, "sockets.failed"); got != 0 {
		t.Errorf("sockets.failed = %v", got)
	}
	if _, ok := rep["sockets"].(map[string]any)["failed_by"].(map[string]any); !ok {
		t.Error("sockets.failed_by missing")
	}
	sent, delivered := num(t, rep, "delivery.sent"), num(t, rep, "delivery.delivered")
	// 2,000/s for 3 s to 1,500 users holding 2,000 sockets: about 8,000 due.
	if sent < 4000 || delivered != sent {
		t.Errorf("delivery: sent %v, delivered %v", sent, delivered)
	}
	for _, k := range []string{"delivery.lost", "delivery.duplicates"} {
		if got := num(t, rep, k); got != 0 {
			t.Errorf("%s = %v", k, got)
		}
	}
	for _, k := range []string{"handshake.p50_ms", "handshake.p99_ms", "delivery.p50_ms", "delivery.p99_ms", "delivery.per_s", "broadcast.last_ms"} {
		if got := num(t, rep, k); got <= 0 {
			t.Errorf("%s = %v, want > 0", k, got)
		}
	}
	if got := num(t, rep, "broadcast.sockets"); got != 2000 {
		t.Errorf("broadcast reached %v sockets, want 2000", got)
	}
	// Server cost comes from both replicas' /metrics.
	for _, k := range []string{"server.rss_kib_per_socket", "server.cpu_us_per_handshake", "server.cpu_us_per_delivery"} {
		if got := num(t, rep, k); got <= 0 {
			t.Errorf("%s = %v, want > 0", k, got)
		}
	}
	// Churn: sockets reconnected with fresh tokens, and lost nothing.
	var churn map[string]any
	for _, s := range rep["scenarios"].([]any) {
		if sc := s.(map[string]any); sc["name"] == "churn" {
			churn = sc
		}
	}
	if churn == nil {
		t.Fatal("no churn scenario in the report")
	}
	if got := num(t, churn, "reconnects"); got < 100 {
		t.Errorf("churn reconnects = %v, want ≥ 100 (5%% of 2,000 a second for 3 s)", got)
	}
	if got := num(t, churn, "delivery.lost"); got != 0 {
		t.Errorf("churn lost %v", got)
	}
	if got := num(t, churn, "sockets_up_at_end"); got != 2000 {
		t.Errorf("sockets up after churn = %v", got)
	}
	// Replay: users 900…1349 (one socket each) left and came back through
	// the same two replicas with since; users 1350…1499 stayed.
	for k, want := range map[string]float64{
		"replay.storm_users": 450, "replay.storm_sockets": 450, "replay.replayed": 450,
		"replay.stay_sockets": 150, "replay.stay_ok": 150, "replay.live_sockets": 1400,
		"replay.appended": 6000, "replay.events_per_user": 10,
	} {
		if got := num(t, rep, k); got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	// herald counted the replayed events too (read after the scenario:
	// the storm window's own reading may precede the counter's increment
	// that follows the queued replay_complete).
	var replaySc map[string]any
	for _, s := range rep["scenarios"].([]any) {
		if sc := s.(map[string]any); sc["name"] == "replay" {
			replaySc = sc
		}
	}
	if replaySc == nil {
		t.Fatal("no replay scenario in the report")
	}
	if got := num(t, replaySc, "server.inbox_replayed_events"); got != 4500 {
		t.Errorf("herald_inbox_replayed_events_total grew by %v over replay, want 4500", got)
	}
	for _, k := range []string{"replay.resyncs", "replay.not_replayed", "replay.wrong", "replay.duplicates", "replay.missing", "replay.out_of_order", "replay.stay_bad", "replay.server_resyncs"} {
		if got := num(t, rep, k); got != 0 {
			t.Errorf("%s = %v", k, got)
		}
	}
	for _, k := range []string{"replay.first_ms", "replay.median_ms", "replay.last_ms", "replay.before.p99_ms", "replay.storm.p50_ms", "replay.server_cpu_us_per_replayed_event_gross"} {
		if got := num(t, rep, k); got <= 0 {
			t.Errorf("%s = %v, want > 0", k, got)
		}
	}
	// herald's own part of the storm's live latency: a bucket bound, or -1
	// past the last one; 0 only if herald observed no delivery.
	if got := num(t, rep, "replay.server_delivery_p99_ms_storm"); got == 0 {
		t.Error("replay.server_delivery_p99_ms_storm = 0: no delivery observed by herald during the storm")
	}
	if first, last := num(t, rep, "replay.first_ms"), num(t, rep, "replay.last_ms"); first > last {
		t.Errorf("replay first %v ms after last %v ms", first, last)
	}
	t.Logf("report:\n%s", res.stdout)
	if !strings.Contains(res.stdout, "result: OK") {
		t.Errorf("text report has no verdict:\n%s", res.stdout)
	}
	// The parent printed progress lines on stderr (a pipe: plain lines).
	if !strings.Contains(res.stderr, "fanout") || strings.Contains(res.stderr, "\r") {
		t.Errorf("progress on stderr:\n%s", res.stderr)
	}
}

// TestLoadTestRefusedSockets: sockets herald refuses are failures, by
// reason, with exit status 1.
func TestLoadTestRefusedSockets(t *testing.T) {
	_, hs := startReplicas(t, 1, "HERALD_ALLOWED_ORIGINS=https://app.example.com")
	tests := []struct {
		name, secret, origin, reason string
	}{
		{"wrong session secret", strings.Repeat("w", 40), "", "token_http_401"},
		{"origin not allowed", testSessionSecret, "https://evil.example.net", "token_http_403"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secretFile := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secretFile, []byte(tc.secret), 0o600); err != nil {
				t.Fatal(err)
			}
			jsonPath := filepath.Join(t.TempDir(), "report.json")
			args := []string{"--target", "http://" + hs[0].Addr, "--sockets", "20",
				"--session-secret-file", secretFile, "--json", jsonPath, "--connect-timeout", "10s"}
			if tc.origin != "" {
				args = append(args, "--origin", tc.origin)
			}
			out, err := exec.Command(loadtestBin, args...).CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, out)
			}
			b, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Sockets struct {
					OK       int            `json:"ok"`
					Failed   int            `json:"failed"`
					FailedBy map[string]int `json:"failed_by"`
				} `json:"sockets"`
				OK bool `json:"ok"`
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.Sockets.OK != 0 || rep.Sockets.Failed != 20 || rep.Sockets.FailedBy[tc.reason] != 20 {
				t.Errorf("report: %+v", rep)
			}
		})
	}
	// The allowed origin works.
	res := runLoadtest(t, "--target", "http://"+hs[0].Addr, "--sockets", "20", "--origin", "https://app.example.com")
	if res.code != 0 || num(t, res.report, "sockets.ok") != 20 {
		t.Errorf("allowed origin: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
}

// TestLoadTestFollowsRestart: a replica drained in the middle of a
// fan-out sends every socket a reconnect hint and 1012; the load tester
// waits the hinted delay, reconnects with a fresh token to the replica's
// successor, and loses nothing while connected. The successor starts only
// once the publishing is over, when the scenario says it waits for the
// sockets to reconnect: sockets_up_at_end counts them, however long the
// successor took to start (up to the drain timeout).
func TestLoadTestFollowsRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	addr := testenv.FreeAddr(t)
	env := replicaEnv(r, addr, 0, []string{"HERALD_DRAIN_WINDOW=500ms"})
	h := testenv.StartHerald(t, heraldBin, addr, env)

	jsonPath := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(loadtestBin, "--target", "http://"+addr, "--sockets", "200", "--redis", r.URL(),
		"--scenario", "connect,fanout", "--rate", "400", "--duration", "8s", "--drain-timeout", "30s",
		"--session-secret", testSessionSecret, "--json", jsonPath, "--deadline", "90s")
	var stdout bytes.Buffer
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The drain begins once the fan-out delivers (a progress line a
	// second), well before its 8 s of publishing end.
	delivering := regexp.MustCompile(`fanout +up .* deliveries [1-9][0-9]*/s`)
	testenv.Eventually(t, 30*time.Second, func() error {
		if !delivering.MatchString(stderr.String()) {
			return fmt.Errorf("fan-out not delivering:\n%s", stderr.String())
		}
		return nil
	})
	h.Signal(syscall.SIGTERM)
	if err := h.Wait(15 * time.Second); err != nil {
		t.Fatalf("herald did not drain: %v", err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(stderr.String(), "waiting for sockets to reconnect") {
			return fmt.Errorf("the fan-out does not wait for the sockets to reconnect:\n%s", stderr.String())
		}
		return nil
	})
	testenv.StartHerald(t, heraldBin, addr, env)
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("loadtest: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Scenarios []struct {
			Name     string            `json:"name"`
			Up       int               `json:"sockets_up_at_end"`
			Closed   map[string]int    `json:"sessions_ended"`
			FailedBy map[string]uint64 `json:"failed_by"`
			Delivery struct {
				Sent, Delivered, Lost int
			} `json:"delivery"`
		} `json:"scenarios"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	fan := rep.Scenarios[len(rep.Scenarios)-1]
	if fan.Name != "fanout" || fan.Closed["close_1012"] != 200 || fan.Up != 200 || fan.Delivery.Lost != 0 || fan.Delivery.Sent == 0 {
		t.Errorf("fan-out across the restart: %+v\n%s", fan, stdout.String())
	}
}

// TestLoadTestSlowSocketsShed: sockets that stop reading, flooded past
// herald's queue cap, are shed with 4009, and the others lose nothing.
func TestLoadTestSlowSocketsShed(t *testing.T) {
	r, hs := startReplicas(t, 1, "HERALD_MAX_QUEUE_BYTES=65536")
	res := runLoadtest(t, "--target", "http://"+hs[0].Addr, "--sockets", "200", "--redis", r.URL(),
		"--scenario", "connect,slow", "--rate", "400", "--duration", "8s",
		"--slow-share", "0.01", "--slow-flood", "8388608", "--deadline", "90s")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	var slow map[string]any
	for _, s := range res.report["scenarios"].([]any) {
		if sc := s.(map[string]any); sc["name"] == "slow" {
			slow = sc
		}
	}
	if slow == nil {
		t.Fatalf("no slow scenario:\n%s", res.stdout)
	}
	if got := num(t, slow, "slow.slow"); got != 2 {
		t.Errorf("slow sockets = %v, want 2 (1%% of 200)", got)
	}
	if got, server := num(t, slow, "slow.shed"), num(t, slow, "slow.shed_by_server"); got != 2 || server != 2 {
		t.Errorf("shed %v, herald counted %v; want 2 and 2\n%s", got, server, res.stdout)
	}
	if got := num(t, slow, "delivery.lost"); got != 0 {
		t.Errorf("the readers lost %v", got)
	}
	if got := num(t, slow, "sockets_up_at_end"); got != 200 {
		t.Errorf("sockets up at the end = %v, want 200 (the shed ones reconnect)", got)
	}
}

// TestLoadTestReplayResyncFails: a storm whose reconnects herald answers
// with resync instead of the events (more events than its inbox keeps, or
// no inbox at all) is a replay correctness failure: exit status 1, every
// storm socket counted as resync, the live sockets unharmed.
func TestLoadTestReplayResyncFails(t *testing.T) {
	tests := []struct {
		name, env string
	}{
		{"inbox cap below the events", "HERALD_INBOX_MAX_LEN=5"},
		{"no inbox", "HERALD_INBOX=false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, hs := startReplicas(t, 1, tc.env)
			res := runLoadtest(t, "--target", "http://"+hs[0].Addr, "--sockets", "100", "--redis", r.URL(),
				"--scenario", "connect,replay", "--rate", "200", "--duration", "2s",
				"--replay-users", "40", "--replay-events", "10", "--deadline", "60s")
			if res.code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", res.code, res.stdout, res.stderr)
			}
			for k, want := range map[string]float64{"replay.storm_sockets": 40, "replay.resyncs": 40, "replay.replayed": 0, "replay.live_sockets": 60} {
				if got := num(t, res.report, k); got != want {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
			for _, s := range res.report["scenarios"].([]any) {
				if sc := s.(map[string]any); sc["name"] == "replay" {
					if got := num(t, sc, "delivery.lost"); got != 0 {
						t.Errorf("live sockets lost %v", got)
					}
				}
			}
			if !strings.Contains(res.stdout, "FAILED: replay:") {
				t.Errorf("no replay failure in the report:\n%s", res.stdout)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
