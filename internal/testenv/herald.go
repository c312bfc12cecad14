package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildHerald compiles cmd/herald into dir and returns the binary's path.
// Call it from TestMain; the race detector is on when the tests have it.
func BuildHerald(dir string) (string, error) { return buildHerald(dir, "herald", raceEnabled) }

// BuildHeraldNoRace compiles cmd/herald as shipped, without the race
// detector, for tests that measure latency under load (the detector slows
// a handshake several times over).
func BuildHeraldNoRace(dir string) (string, error) { return buildHerald(dir, "herald-norace", false) }

func buildHerald(dir, name string, race bool) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/herald")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/herald: %v\n%s", err, out)
	}
	return bin, nil
}

// Herald is a herald process started by a test.
type Herald struct {
	t    testing.TB
	Addr string // host:port it listens on
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status; valid after done
}

// StartHerald runs bin with args and env (added to a clean environment) and
// waits until /healthz answers. The process is killed when the test ends if
// it is still running. addr must be the --addr/HERALD_ADDR it listens on.
func StartHerald(t testing.TB, bin, addr string, env []string, args ...string) *Herald {
	t.Helper()
	return startHerald(t, exec.Command(bin, args...), addr, env)
}

// StartHeraldFDLimit is StartHerald with the process' file descriptor limit
// (soft and hard: the Go runtime raises the soft limit to the hard one) set
// to fds, for tests of descriptor exhaustion.
func StartHeraldFDLimit(t testing.TB, bin, addr string, fds int, env []string, args ...string) *Herald {
	t.Helper()
	script := "ulimit -n " + itoa(fds) + " && exec \"$0\" \"$@\""
	return startHerald(t, exec.Command("/bin/sh", append([]string{"-c", script, bin}, args...)...), addr, env)
}

func startHerald(t testing.TB, cmd *exec.Cmd, addr string, env []string) *Herald {
	t.Helper()
	h := &Herald{t: t, Addr: addr, logs: &lockedBuffer{}, done: make(chan struct{})}
	h.cmd = cmd
	h.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	h.cmd.Stdout = h.logs
	h.cmd.Stderr = h.logs
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start herald: %v", err)
	}
	go func() {
		h.err = h.cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		h.Kill()
		if t.Failed() {
			t.Logf("herald %s output:\n%s", addr, h.Logs())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h
			}
		}
		select {
		case <-h.done:
			t.Fatalf("herald exited at start: %v\n%s", h.err, h.Logs())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald on %s not healthy after 15s: %v\n%s", addr, err, h.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns everything the process printed so far.
func (h *Herald) Logs() string { return h.logs.String() }

// Signal sends sig to the process.
func (h *Herald) Signal(sig os.Signal) { _ = h.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit error.
func (h *Herald) Wait(within time.Duration) error {
	select {
	case <-h.done:
		return h.err
	case <-time.After(within):
		return fmt.Errorf("herald still running after %s", within)
	}
}

// Kill stops the process with SIGKILL, as a crash would.
func (h *Herald) Kill() {
	select {
	case <-h.done:
		return
	default:
	}
	_ = h.cmd.Process.Signal(syscall.SIGKILL)
	<-h.done
}

// FreeAddr returns 127.0.0.1:<a free port>.
func FreeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", itoa(FreePort(t)))
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Pid is the process id.
func (h *Herald) Pid() int { return h.cmd.Process.Pid }

// Metric returns the value of one series of the process' /metrics, e.g.
// `herald_sockets` or `herald_disconnects_total{code="1001"}`, or an error
// when it is missing or the request fails.
func (h *Herald) Metric(series string) (float64, error) {
	return ScrapeMetric("http://"+h.Addr+"/metrics", series)
}

// ScrapeMetric returns the value of one series at a Prometheus endpoint.
// Each scrape uses a connection of its own, closed after the answer, so
// that scraping leaves no idle connection (and no goroutine) in the server.
func ScrapeMetric(url, series string) (float64, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("series %s not in %s", series, url)
}

// Status returns the HTTP status of GET path on the process, or 0 when the
// request fails.
func (h *Herald) Status(path string) int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := c.Get("http://" + h.Addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
