package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
)

var (
	sessionSecret = []byte("session-secret-for-tests-0123456789abcdef")
	wsSecret      = []byte("ws-token-secret-for-tests-0123456789abcdef")
)

// harness is one gateway on a loopback port with its own broker, jti store
// and log buffer.
type harness struct {
	t      testing.TB
	srv    *gateway.Server
	base   string // http://127.0.0.1:port
	ws     string // ws://127.0.0.1:port/ws
	auth   *auth.Authenticator
	store  replay.Store
	broker fanout.Broker
	logs   *syncBuffer
	served chan error
	down   bool
}

type harnessOpts struct {
	gw     func(*gateway.Config)
	auth   func(*auth.Config)
	store  replay.Store  // nil: memory
	broker fanout.Broker // nil: memory
	// sendBuffer, when set, fixes SO_SNDBUF of every accepted socket, so
	// that the server's writes fill the kernel buffer quickly.
	sendBuffer int
}

func start(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	acfg := auth.Config{SessionSecret: sessionSecret, WSTokenSecret: wsSecret}
	if o.auth != nil {
		o.auth(&acfg)
	}
	authn, err := auth.New(context.Background(), acfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	h := &harness{t: t, auth: authn, store: o.store, broker: o.broker, logs: &syncBuffer{}, served: make(chan error, 1)}
	if h.store == nil {
		h.store = replay.NewMemory(replay.MemoryConfig{})
	}
	if h.broker == nil {
		h.broker = fanout.NewMemory(fanout.MemoryConfig{})
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(h.logs), zapcore.DebugLevel))
	reg := prometheus.NewRegistry()
	cfg := gateway.Config{
		Auth: authn, Replay: h.store, Broker: h.broker,
		Logger: log, Registerer: reg, Gatherer: reg,
		CloseTimeout: 2 * time.Second,
	}
	if o.gw != nil {
		o.gw(&cfg)
	}
	srv, err := gateway.New(cfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	h.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.sendBuffer > 0 {
		ln = &sendBufferListener{Listener: ln, size: o.sendBuffer}
	}
	go func() { h.served <- srv.Serve(ln, nil) }()
	h.base = "http://" + ln.Addr().String()
	h.ws = "ws://" + ln.Addr().String() + "/ws"
	t.Cleanup(h.stop)
	return h
}

// stop shuts the gateway down (if the test has not) and releases the rest.
func (h *harness) stop() {
	if !h.down {
		h.shutdown(10 * time.Second)
	}
	h.broker.Close()
	h.store.Close()
	h.auth.Close()
	http.DefaultClient.CloseIdleConnections()
}

func (h *harness) shutdown(within time.Duration) {
	h.down = true
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
	if err := <-h.served; err != nil {
		h.t.Errorf("Serve: %v", err)
	}
}

// session returns a session JWT for user, as the main backend would issue.
func (h *harness) session(user string) string {
	h.t.Helper()
	tok, err := auth.SignDevSession(sessionSecret, "HS256", user, time.Hour)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// post sends POST path with the given headers.
func (h *harness) post(path string, hdr map[string]string) *http.Response {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// token fetches a WS token for user through the token endpoint.
func (h *harness) token(user string) string {
	h.t.Helper()
	resp := h.post("/api/ws/token", map[string]string{"Cookie": "access_token=" + h.session(user)})
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		h.t.Fatalf("token for %s: %d %s", user, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		h.t.Fatal(err)
	}
	return body.Token
}

// dial opens a socket with token and no Origin header.
func (h *harness) dial(token string) (*testenv.WSClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(token), nil)
}

type welcome struct {
	Type       string `json:"type"`
	SocketID   string `json:"socket_id"`
	UserID     string `json:"user_id"`
	HeartbeatS int    `json:"heartbeat_s"`
}

// connect opens a socket for user and reads its welcome frame.
func (h *harness) connect(user string) (*testenv.WSClient, welcome) {
	h.t.Helper()
	return h.connectWith(testenv.WSDialer{}, user)
}

// connectWith is connect with a dialer of the test's choosing.
func (h *harness) connectWith(d testenv.WSDialer, user string) (*testenv.WSClient, welcome) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, h.ws+"?token="+url.QueryEscape(h.token(user)))
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	h.t.Cleanup(func() { c.Close() })
	msg, err := c.ReadText(5 * time.Second)
	if err != nil {
		h.t.Fatalf("welcome for %s: %v", user, err)
	}
	var w welcome
	if err := json.Unmarshal([]byte(msg), &w); err != nil || w.Type != "welcome" {
		h.t.Fatalf("first frame = %s, want a welcome", msg)
	}
	return c, w
}

// metric returns the value of one series from /metrics, e.g.
// `herald_disconnects_total{code="4009"}`.
func (h *harness) metric(series string) float64 {
	h.t.Helper()
	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	h.t.Fatalf("series %s not in /metrics", series)
	return 0
}

// expectClose reads until the server's close frame and checks its code.
func expectClose(t *testing.T, c *testenv.WSClient, code int, reason string) {
	t.Helper()
	cf, err := c.ExpectClose(5 * time.Second)
	if err != nil {
		t.Fatalf("want close %d %s: %v", code, reason, err)
	}
	if cf.Code != code || (reason != "" && cf.Reason != reason) {
		t.Fatalf("close = %d %q, want %d %q", cf.Code, cf.Reason, code, reason)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
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

// lines returns the decoded log lines whose msg is msg.
func (b *syncBuffer) lines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// holdBroker is a memory broker that holds back the subscription
// confirmation of one user (every user when user is "") until release is
// closed, as a slow Redis would.
type holdBroker struct {
	fanout.Broker
	user    string
	release chan struct{}
	once    sync.Once
}

func newHoldBroker(user string) *holdBroker {
	return &holdBroker{Broker: fanout.NewMemory(fanout.MemoryConfig{}), user: user, release: make(chan struct{})}
}

func (b *holdBroker) Subscribe(user string) <-chan struct{} {
	ready := b.Broker.Subscribe(user)
	if b.user != "" && user != b.user {
		return ready
	}
	held := make(chan struct{})
	go func() {
		<-ready
		<-b.release
		close(held)
	}()
	return held
}

// Release confirms the held subscription; it may be called more than once.
func (b *holdBroker) Release() { b.once.Do(func() { close(b.release) }) }

// sendBufferListener sets SO_SNDBUF on every connection it accepts.
type sendBufferListener struct {
	net.Listener
	size int
}

func (l *sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(l.size); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// must returns v, or panics with err: for constructors that cannot fail
// with the arguments a test gives them.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
