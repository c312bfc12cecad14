package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

var heraldBin string

// binDir holds the binaries the tests build; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	heraldBin, err = testenv.BuildHerald(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestQuickStart walks the README's quick start against the real binary:
// --dev, log in, fetch a token, open a socket, ping, then SIGTERM.
func TestQuickStart(t *testing.T) {
	addr := testenv.FreeAddr(t)
	h := testenv.StartHerald(t, heraldBin, addr, nil, "--dev", "--addr", addr, "--drain-window", "200ms")
	base := "http://" + addr

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 5 * time.Second}
	resp, err := client.Post(base+"/dev/login?user=42", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("dev login: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = client.Post(base+"/api/ws/token", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %v %v", resp, err)
	}
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Token == "" || tok.ExpiresIn != 30 {
		t.Fatalf("token response = %+v", tok)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := testenv.DialWS(ctx, "ws://"+addr+"/ws?token="+url.QueryEscape(tok.Token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	msg, err := ws.ReadText(5 * time.Second)
	// The embedded inbox is on: the welcome names the inbox position.
	if err != nil || !strings.Contains(msg, `"type":"welcome"`) || !strings.Contains(msg, `"user_id":"42"`) || !strings.Contains(msg, `"inbox_id":"`) {
		t.Fatalf("welcome = %q %v", msg, err)
	}
	ws.WriteText(`{"type":"ping"}`)
	if msg, err := ws.ReadText(5 * time.Second); msg != `{"type":"pong"}` {
		t.Fatalf("pong = %q %v", msg, err)
	}

	h.Signal(syscall.SIGTERM)
	msg, err = ws.ReadText(5 * time.Second)
	if err != nil || !strings.Contains(msg, `"type":"reconnect"`) {
		t.Fatalf("after SIGTERM got %q %v, want the reconnect frame", msg, err)
	}
	if cf, err := ws.ExpectClose(5 * time.Second); err != nil || cf.Code != 1012 {
		t.Fatalf("close = %v %v, want 1012", cf, err)
	}
	if err := h.Wait(10 * time.Second); err != nil {
		t.Fatalf("herald exit: %v\n%s", err, h.Logs())
	}
	logs := h.Logs()
	if strings.Contains(logs, tok.Token) || strings.Contains(logs, "token=ey") {
		t.Error("the WS token reached the output")
	}
	for _, want := range []string{`"msg":"connect"`, `"msg":"disconnect"`, `"code":1012`, "session secret (HS256)"} {
		if !strings.Contains(logs, want) {
			t.Errorf("output lacks %s:\n%s", want, logs)
		}
	}
}

// TestRefusedAtStart: settings that are unsafe or inconsistent stop herald
// before it listens, with a message that says why.
func TestRefusedAtStart(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"short session secret", []string{"--standalone", "--session-secret", "too-short"}, nil, "32 bytes"},
		{"short secret from a file", []string{"--standalone"}, []string{"HERALD_SESSION_SECRET_FILE=" + writeFile(t, "short\n")}, "32 bytes"},
		{"no session key at all", []string{"--standalone"}, nil, "no session key"},
		{"no session key points at --dev", []string{"--standalone"}, nil, "run herald --dev"},
		{"no Redis and no --standalone", []string{"--session-secret", strings.Repeat("s", 32)}, nil, "--redis-url"},
		{"no Redis and no --standalone names the cluster", []string{"--session-secret", strings.Repeat("s", 32)}, nil, "--redis-cluster"},
		{"no Redis and no --standalone names --standalone", []string{"--session-secret", strings.Repeat("s", 32)}, nil, "--standalone"},
		{"no Redis and no --standalone names --dev", []string{"--session-secret", strings.Repeat("s", 32)}, nil, "herald --dev"},
		{"nothing at all", nil, nil, "--standalone"},
		{"standalone with Redis", []string{"--standalone", "--session-secret", strings.Repeat("s", 32), "--redis-url", "redis://127.0.0.1:1/0"}, nil, "give one or the other"},
		{"rebalance margin 0", []string{"--redis-url", "redis://127.0.0.1:1/0", "--session-secret", strings.Repeat("s", 32), "--ws-token-secret", strings.Repeat("w", 32), "--rebalance-margin", "0"}, nil, "must be above 0"},
		{"dev on a public address", []string{"--dev", "--addr", "0.0.0.0:0"}, nil, "loopback"},
		{"redis without a shared WS secret", []string{"--session-secret", strings.Repeat("s", 32), "--redis-url", "redis://127.0.0.1:1/0"}, nil, "HERALD_WS_TOKEN_SECRET"},
		{"inbox without room", []string{"--standalone", "--session-secret", strings.Repeat("s", 32), "--inbox-max-len", "-1"}, nil, "inbox max len"},
		{"both Redis modes", []string{"--session-secret", strings.Repeat("s", 32), "--ws-token-secret", strings.Repeat("w", 32), "--redis-cluster", "127.0.0.1:1", "--redis-url", "redis://127.0.0.1:1/0"}, nil, "give one"},
		{"idle shorter than ping", []string{"--standalone", "--session-secret", strings.Repeat("s", 32), "--ping-interval", "10s", "--idle-timeout", "5s"}, nil, "idle timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !strings.Contains(strings.Join(args, " "), "--addr") {
				args = append(args, "--addr", "127.0.0.1:0")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, heraldBin, args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("herald started; want a refusal mentioning %q", tt.want)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output %q does not mention %q", out, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, content string) string {
	p := t.TempDir() + "/f"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSurvivesEMFILE runs herald with 64 file descriptors, exhausts them,
// and checks that it backs off instead of spinning, logs it, and serves
// again once descriptors are free.
func TestSurvivesEMFILE(t *testing.T) {
	prlimit := testenv.LookBinary(t, "prlimit", "util-linux")
	addr := testenv.FreeAddr(t)
	wrapper := writeFile(t, "#!/bin/sh\nexec "+prlimit+" --nofile=64:64 "+heraldBin+" \"$@\"\n")
	os.Chmod(wrapper, 0o755)
	h := testenv.StartHerald(t, wrapper, addr, []string{"HERALD_SESSION_SECRET=" + strings.Repeat("s", 32)}, "--standalone", "--addr", addr)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(h.Logs(), "backing off") {
			return fmt.Errorf("no backoff in the log yet")
		}
		return nil
	})
	pid := h.Pid()
	before := cpuTicks(t, pid)
	time.Sleep(time.Second)
	spent := cpuTicks(t, pid) - before
	// A spinning accept loop burns a whole core: ~100 ticks a second.
	if spent > 30 {
		t.Errorf("herald used %d CPU ticks in 1s while out of descriptors: it is spinning", spent)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	testenv.Eventually(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// cpuTicks returns the user+system clock ticks a process has used.
func cpuTicks(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}
