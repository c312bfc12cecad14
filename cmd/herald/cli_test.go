package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestHelpGrouped: herald --help lists every flag once, under the group it
// belongs to, with its HERALD_* variable; the four ways to say where Redis
// is come first; no default reads "0 means the default".
func TestHelpGrouped(t *testing.T) {
	var out bytes.Buffer
	_, err := parseOptions([]string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	help := out.String()
	pos := -1
	for _, g := range flagGroups {
		i := strings.Index(help, "\n"+g.title+":\n")
		if i < 0 {
			t.Fatalf("no group %q in:\n%s", g.title, help)
		}
		if i < pos {
			t.Errorf("group %q out of order", g.title)
		}
		pos = i
	}
	if strings.Contains(help, "\nOther:\n") {
		t.Errorf("flags outside every group (add them to flagGroups in usage.go):\n%s", help[strings.Index(help, "\nOther:\n"):])
	}
	fs := newFlagSet(&options{}, io.Discard)
	groups := help[strings.Index(help, "\nServer:\n"):]
	fs.VisitAll(func(f *flag.Flag) {
		line := regexp.MustCompile(`(?m)^  --`+regexp.QuoteMeta(f.Name)+`( .*)?$`).FindAllString(groups, -1)
		if len(line) != 1 {
			t.Errorf("--%s listed %d times", f.Name, len(line))
			return
		}
		if f.Name != "version" && !strings.Contains(line[0], envName(f.Name)) {
			t.Errorf("--%s line %q lacks %s", f.Name, line[0], envName(f.Name))
		}
	})
	for _, want := range []string{"--redis-url", "--redis-cluster", "--standalone", "--dev", "herald token --user"} {
		if !strings.Contains(help[:strings.Index(help, "\nServer:\n")], want) {
			t.Errorf("the head of --help does not name %s", want)
		}
	}
	if strings.Contains(help, "0 means the default") {
		t.Error(`--help still says "0 means the default"`)
	}
	if !regexp.MustCompile(`--rebalance-margin float[^\n]*\n[^\n]*\(default 0\.1\)`).MatchString(help) {
		t.Errorf("--rebalance-margin does not show its default 0.1:\n%s", help)
	}
}

// TestModeRequired: a replica says where its Redis is, or that it runs
// alone; Sentinel is a --redis-url. Checked before anything starts.
func TestModeRequired(t *testing.T) {
	secret := strings.Repeat("s", 32)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // "" : accepted
	}{
		{"nothing", []string{"--session-secret", secret}, nil, "--standalone"},
		{"standalone", []string{"--standalone", "--session-secret", secret}, nil, ""},
		{"standalone from the environment", []string{"--session-secret", secret}, map[string]string{"HERALD_STANDALONE": "true"}, ""},
		{"one Redis", []string{"--redis-url", "redis://127.0.0.1:6379/0", "--session-secret", secret}, nil, ""},
		{"Sentinel", []string{"--session-secret", secret}, map[string]string{"HERALD_REDIS_URL": "redis-sentinel://127.0.0.1:26379/mymaster"}, ""},
		{"Redis Cluster", []string{"--redis-cluster", "127.0.0.1:7000", "--session-secret", secret}, nil, ""},
		{"dev", []string{"--dev"}, nil, ""},
		{"dev and standalone", []string{"--dev", "--standalone"}, nil, ""},
		{"standalone and Redis", []string{"--standalone", "--session-secret", secret}, map[string]string{"HERALD_REDIS_URL": "redis://127.0.0.1:6379/0"}, "give one or the other"},
		{"no session key", []string{"--standalone"}, nil, "run herald --dev"},
		{"rebalance rate over 1", []string{"--standalone", "--session-secret", secret, "--rebalance-rate", "2"}, nil, "at most 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			err = checkMode(o)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v; want one mentioning %q", err, tt.want)
			}
		})
	}
	if err := errNoMode.Error(); !strings.Contains(err, "--redis-url") || !strings.Contains(err, "--redis-cluster") ||
		!strings.Contains(err, "--standalone") || !strings.Contains(err, "--dev") {
		t.Errorf("the refusal does not name the four settings: %s", err)
	}
}

// TestVersion: herald --version prints the version, the commit and the Go
// version, and the same three label herald_build_info.
func TestVersion(t *testing.T) {
	out, err := exec.Command(heraldBin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^herald (\S+) \(commit (\S+), (go\S+), `).FindStringSubmatch(string(out))
	if m == nil || m[3] != runtime.Version() {
		t.Fatalf("--version printed %q; want herald <version> (commit <commit>, %s, …)", out, runtime.Version())
	}
	// A HERALD_VERSION variable is not --version: herald runs.
	addr := testenv.FreeAddr(t)
	h := testenv.StartHerald(t, heraldBin, addr, []string{"HERALD_VERSION=true", "HERALD_SESSION_SECRET=" + strings.Repeat("s", 32)}, "--standalone", "--addr", addr)
	series := `herald_build_info{commit="` + m[2] + `",goversion="` + m[3] + `",version="` + m[1] + `"}`
	if v, err := h.Metric(series); err != nil || v != 1 {
		t.Errorf("%s = %v, %v; want 1", series, v, err)
	}
}

// TestVersionFromLinker: the version and commit make build and the
// Dockerfile stamp with -ldflags are the ones --version prints.
func TestVersionFromLinker(t *testing.T) {
	bin := t.TempDir() + "/herald"
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7 -X main.commit=0123abc", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "herald v9.8.7 (commit 0123abc, go") {
		t.Errorf("--version printed %q, %v", out, err)
	}
}

// TestMetricsAddr: with --metrics-addr, /metrics is served there and no
// longer on the main listener; without it, on the main listener as before.
func TestMetricsAddr(t *testing.T) {
	env := []string{"HERALD_SESSION_SECRET=" + strings.Repeat("s", 32)}
	addr, maddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	testenv.StartHerald(t, heraldBin, addr, env, "--standalone", "--addr", addr, "--metrics-addr", maddr)
	if code := getStatus(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Errorf("main listener /metrics: %d; want 404 with --metrics-addr", code)
	}
	if code := getStatus(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("main listener /readyz: %d", code)
	}
	if v, err := testenv.ScrapeMetric("http://"+maddr+"/metrics", "herald_sockets"); err != nil || v != 0 {
		t.Errorf("metrics listener herald_sockets = %v, %v", v, err)
	}

	addr2 := testenv.FreeAddr(t)
	testenv.StartHerald(t, heraldBin, addr2, env, "--standalone", "--addr", addr2)
	if v, err := testenv.ScrapeMetric("http://"+addr2+"/metrics", "herald_sockets"); err != nil || v != 0 {
		t.Errorf("main listener herald_sockets without --metrics-addr = %v, %v", v, err)
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTokenSubcommand: herald token prints a session that a replica with
// the same secret (and issuer and audience) accepts at its token endpoint,
// as a bare JWT and as a cookie.
func TestTokenSubcommand(t *testing.T) {
	secret := strings.Repeat("t", 48)
	env := []string{"HERALD_SESSION_SECRET=" + secret, "HERALD_SESSION_ISSUER=https://app.example.com", "HERALD_SESSION_AUDIENCE=herald", "HERALD_SESSION_ALGS=HS384"}
	addr := testenv.FreeAddr(t)
	testenv.StartHerald(t, heraldBin, addr, env, "--standalone", "--addr", addr)

	token := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(heraldBin, append([]string{"token"}, args...)...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("herald token %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	post := func(cookie, bearer string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/ws/token", nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	jwt := token("--user", "42")
	if code := post("", jwt); code != 200 {
		t.Errorf("token endpoint with herald token's JWT: %d; want 200", code)
	}
	cookie := token("--user", "42", "--cookie")
	if !strings.HasPrefix(cookie, "access_token=") {
		t.Fatalf("--cookie printed %q", cookie)
	}
	if code := post(cookie, ""); code != 200 {
		t.Errorf("token endpoint with herald token's cookie: %d; want 200", code)
	}
	if code := post("", token("--user", "42", "--session-audience", "someone-else")); code != 401 {
		t.Errorf("a session for another audience: %d; want 401", code)
	}
}

// TestTokenSubcommandRefuses: herald token says what is missing.
func TestTokenSubcommandRefuses(t *testing.T) {
	secret := strings.Repeat("t", 32)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no user", []string{"--session-secret", secret}, nil, "--user is required"},
		{"no secret", []string{"--user", "42"}, nil, "HERALD_SESSION_SECRET"},
		{"short secret", []string{"--user", "42", "--session-secret", "short"}, nil, "32 bytes"},
		{"asymmetric only", []string{"--user", "42", "--session-secret", secret}, map[string]string{"HERALD_SESSION_ALGS": "RS256"}, "no HS algorithm"},
		{"bad user", []string{"--user", "", "--session-secret", secret}, nil, "--user is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(context.Background(), append([]string{"token"}, tt.args...), func(k string) string { return tt.env[k] }, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v; want one mentioning %q", err, tt.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("printed %q on a refusal", stdout.String())
			}
		})
	}
}
