package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server process owned by one test. It listens on a fixed
// loopback port for its whole life, so Kill followed by Start brings it back
// at the same address, empty (nothing is persisted).
type Redis struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	argv []string // the command line after the binary

	mu  sync.Mutex
	cmd *exec.Cmd // guarded by mu; nil while stopped
}

// StartRedis starts a private redis-server on a free loopback port and stops
// it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, FreePort(t), nil)
}

// startRedis starts redis-server on port with extra arguments after the
// usual ones; the first extra argument may be a config file (see
// startRedisArgv).
func startRedis(t testing.TB, port int, extra []string) *Redis {
	t.Helper()
	dir := t.TempDir()
	argv := append([]string{
		"--bind", "127.0.0.1",
		"--port", itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}, extra...)
	return startRedisArgv(t, port, dir, argv)
}

// startRedisArgv starts redis-server with exactly argv.
func startRedisArgv(t testing.TB, port int, dir string, argv []string) *Redis {
	t.Helper()
	r := &Redis{
		t:    t,
		bin:  LookBinary(t, "redis-server", "redis-server"),
		port: port,
		dir:  dir,
		argv: argv,
	}
	r.Start()
	t.Cleanup(r.Kill)
	r.WaitUptime()
	return r
}

// Port is the server's port.
func (r *Redis) Port() int { return r.port }

// Addr is host:port of the server.
func (r *Redis) Addr() string { return net.JoinHostPort("127.0.0.1", itoa(r.port)) }

// URL is the redis:// URL herald's --redis-url takes.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Client returns a go-redis client for the server, closed when the test ends.
func (r *Redis) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	r.t.Cleanup(func() { c.Close() })
	return c
}

// Start (re)starts the server and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	cmd := exec.Command(r.bin, r.argv...)
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	// A generous bound: the wait ends at the first PONG, and a loaded
	// machine may take seconds to start the process.
	if err := r.waitPing(30 * time.Second); err != nil {
		r.t.Fatalf("redis-server on %s: %v", r.Addr(), err)
	}
}

// WaitUptime waits until the server has been up for a second. herald's jti
// store refuses tokens that may have been minted before the server started,
// which it knows to the second only: a test that mints and consumes at once
// after a (re)start waits this first second out. StartRedis does.
func (r *Redis) WaitUptime() {
	r.t.Helper()
	if err := r.waitUptime(30 * time.Second); err != nil {
		r.t.Fatalf("redis-server on %s: %v", r.Addr(), err)
	}
}

func (r *Redis) waitUptime(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		info, err := rawCommand(r.Addr(), "INFO server")
		if err == nil && strings.Contains(info, "uptime_in_seconds:") && !strings.Contains(info, "uptime_in_seconds:0\r") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("uptime still 0 after %s: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *Redis) waitPing(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		reply, err := rawCommand(r.Addr(), "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING answered %q", reply)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG after %s: %w", within, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawCommand sends one inline command on a connection of its own and
// returns the reply's text (a status, an error or a bulk string). It uses
// no go-redis pool: a pool that failed to dial a server still starting
// backs off for a second and leaves a goroutine behind.
func rawCommand(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("reply %q", line)
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill() // SIGKILL ends a stopped process too
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Running reports whether the server process is up (started and not killed).
func (r *Redis) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// StartRedisArgs is StartRedis with extra redis-server arguments, such as
// "--cluster-enabled", "yes".
func StartRedisArgs(t testing.TB, extra ...string) *Redis {
	t.Helper()
	return startRedis(t, FreePort(t), extra)
}

// Pause stops the server with SIGSTOP: connections stay open and nothing is
// answered, as when a host vanishes from the network without a reset.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}
