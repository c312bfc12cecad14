package redis

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/internal/testenv"
)

// testLogger logs to the test at Info and above.
func testLogger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
}

// observedLogger logs to the test, as testLogger does, and to the returned
// observer, which a test reads to wait for what the broker logged.
func observedLogger(t testing.TB) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.InfoLevel)
	return zap.New(zapcore.NewTee(testLogger(t).Core(), core)), logs
}

// waitLogged waits until msg was logged at least n times.
func waitLogged(t testing.TB, logs *observer.ObservedLogs, msg string, n int) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		if got := logs.FilterMessage(msg).Len(); got < n {
			return fmt.Errorf("%q logged %d times, want %d", msg, got, n)
		}
		return nil
	})
}

// startBroker starts a Redis broker on client with test-friendly defaults
// for the zero fields of cfg, and closes it when the test ends. It does not
// wait for readiness.
func startBroker(t testing.TB, client *redis.Client, cfg Config) (*Broker, *fanouttest.Recorder) {
	t.Helper()
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 10 * time.Millisecond
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	b, err := New(client, cfg)
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	rec := &fanouttest.Recorder{}
	if err := b.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, rec
}

// newClient returns a client for addr with opts applied, closed when the
// test ends.
func newClient(t testing.TB, addr string, protocol int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// numSub returns PUBSUB NUMSUB for every channel.
func numSub(t testing.TB, c *redis.Client, channels ...string) map[string]int64 {
	t.Helper()
	n, err := c.PubSubNumSub(context.Background(), channels...).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	return n
}

// commandCalls returns the calls of cmd in INFO commandstats.
func commandCalls(t testing.TB, c *redis.Client, cmd string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		return n
	}
	return 0
}

// proxy forwards TCP connections to a target. freeze makes the connections
// open at that moment swallow everything in both directions without closing,
// as a network partition does; later connections work.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	pairs []*pipePair // guarded by mu
	wg    sync.WaitGroup
}

type pipePair struct {
	a, b   net.Conn // a: the client's side
	frozen atomic.Bool
	// pings counts the PING commands the client sent while frozen (which
	// Redis never saw).
	pings atomic.Int64
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.target)
		if err != nil {
			a.Close()
			continue
		}
		pp := &pipePair{a: a, b: b}
		p.mu.Lock()
		p.pairs = append(p.pairs, pp)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pp, a, b)
		go p.pipe(pp, b, a)
	}
}

func (p *proxy) pipe(pp *pipePair, src, dst net.Conn) {
	defer p.wg.Done()
	defer pp.a.Close()
	defer pp.b.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pp.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		} else if n > 0 && src == pp.a {
			pp.pings.Add(int64(bytes.Count(bytes.ToLower(buf[:n]), []byte("\r\nping\r\n"))))
		}
		if err != nil { // io.EOF included
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pp := range p.pairs {
		pp.frozen.Store(true)
	}
}

// frozenPings returns the PINGs swallowed on the frozen connections.
func (p *proxy) frozenPings() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, pp := range p.pairs {
		n += pp.pings.Load()
	}
	return n
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, pp := range p.pairs {
		pp.a.Close()
		pp.b.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
