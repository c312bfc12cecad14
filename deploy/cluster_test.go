package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/internal/testenv"
)

// Settings of the test cluster that the assertions depend on.
const (
	drainWindow  = 500 * time.Millisecond // HERALD_DRAIN_WINDOW
	closeTimeout = 3 * time.Second        // HERALD_CLOSE_TIMEOUT: how long a draining replica waits for a silent client
)

// cluster is one redis-server, three herald replicas and nginx in front of
// them with deploy/nginx/herald.conf, all on loopback. Its methods are used
// from the test's goroutine only.
type cluster struct {
	t       *testing.T
	redis   *testenv.Redis
	bin     string // the herald binary
	rdb     *redis.Client
	nodes   []string          // node ids, in upstream order
	addrs   map[string]string // node id -> host:port
	env     map[string][]string
	procs   map[string]*testenv.Herald // the running process of each node
	all     []*testenv.Herald          // every process started, for the log checks
	nginx   *testenv.Nginx
	session []byte // HS256 secret of session JWTs
	client  *http.Client
	tokens  []string  // every WS token issued
	viaLB   []*socket // every socket opened through nginx
}

// startCluster starts the cluster; extraEnv is added to every replica's
// environment.
func startCluster(t *testing.T, extraEnv ...string) *cluster {
	return startClusterWith(t, heraldBin, extraEnv...)
}

// startClusterWith starts the cluster with the herald binary bin.
func startClusterWith(t *testing.T, bin string, extraEnv ...string) *cluster {
	r := testenv.StartRedis(t)
	c := &cluster{
		t:       t,
		redis:   r,
		rdb:     r.Client(),
		nodes:   []string{"h1", "h2", "h3"},
		addrs:   map[string]string{},
		env:     map[string][]string{},
		procs:   map[string]*testenv.Herald{},
		session: []byte(randomHex(t, 32)),
		bin:     bin,
		client:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	wsSecret := randomHex(t, 32)
	var upstreams []string
	for _, node := range c.nodes {
		addr := testenv.FreeAddr(t)
		c.addrs[node] = addr
		upstreams = append(upstreams, addr)
		c.env[node] = []string{
			"HERALD_ADDR=" + addr,
			"HERALD_REDIS_URL=" + r.URL(),
			"HERALD_WS_TOKEN_SECRET=" + wsSecret,
			"HERALD_SESSION_SECRET=" + string(c.session),
			"HERALD_NODE_ID=" + node,
			"HERALD_TRUSTED_PROXIES=127.0.0.1", // nginx
			"HERALD_DRAIN_WINDOW=" + drainWindow.String(),
			"HERALD_CLOSE_TIMEOUT=" + closeTimeout.String(),
			"HERALD_SHUTDOWN_TIMEOUT=10s",
			"HERALD_TOKEN_RATE=100",
			"HERALD_TOKEN_BURST=200",
			// Off unless a test turns it on: the tests here expect each
			// frame where they put it, and a shed socket gets a 1012.
			"HERALD_REBALANCE=false",
		}
		c.env[node] = append(c.env[node], extraEnv...)
		c.start(node)
	}
	nginxAddr := testenv.FreeAddr(t)
	c.nginx = testenv.StartNginx(t, testenv.HeraldNginxConf(t, nginxAddr, upstreams), nginxAddr)
	return c
}

// start runs node's herald process.
func (c *cluster) start(node string) {
	h := testenv.StartHerald(c.t, c.bin, c.addrs[node], c.env[node])
	c.procs[node] = h
	c.all = append(c.all, h)
}

// socket is a test client's WebSocket, welcomed by a replica.
type socket struct {
	*testenv.WSClient
	ID   string // socket_id of the welcome frame
	Node string // the replica: the socket id's prefix
	User string
}

func (c *cluster) sessionJWT(user string) string {
	jwt, err := auth.SignDevSession(c.session, "HS256", user, 10*time.Minute)
	if err != nil {
		c.t.Fatal(err)
	}
	return jwt
}

// token fetches a WS token for user from addr (a replica or nginx).
func (c *cluster) token(addr, user string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/ws/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.sessionJWT(user))
	resp, err := c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST %s/api/ws/token: %s %s", addr, resp.Status, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("POST %s/api/ws/token: %q: %v", addr, body, err)
	}
	c.tokens = append(c.tokens, tok.Token)
	return tok.Token, nil
}

// dialRaw opens a WebSocket to addr with token, without reading anything.
func (c *cluster) dialRaw(addr, token string, d testenv.WSDialer) (*testenv.WSClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := d.Dial(ctx, "ws://"+addr+"/ws?token="+url.QueryEscape(token))
	if err != nil {
		return nil, err
	}
	c.t.Cleanup(func() { ws.Close() })
	return ws, nil
}

// dial opens a WebSocket to addr with token and reads its welcome.
func (c *cluster) dial(addr, token string, d testenv.WSDialer) (*socket, error) {
	ws, err := c.dialRaw(addr, token, d)
	if err != nil {
		return nil, err
	}
	msg, err := ws.ReadText(5 * time.Second)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("welcome via %s: %w", addr, err)
	}
	var w struct {
		Type     string `json:"type"`
		SocketID string `json:"socket_id"`
		UserID   string `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(msg), &w); err != nil || w.Type != "welcome" {
		ws.Close()
		return nil, fmt.Errorf("first frame via %s = %q; want a welcome", addr, msg)
	}
	node, _, ok := strings.Cut(w.SocketID, ".")
	if !ok {
		ws.Close()
		return nil, fmt.Errorf("socket_id %q is not <node>.<suffix>", w.SocketID)
	}
	s := &socket{WSClient: ws, ID: w.SocketID, Node: node, User: w.UserID}
	if addr == c.nginx.Addr {
		c.viaLB = append(c.viaLB, s)
	}
	return s, nil
}

// connect fetches a token from addr and opens a socket at addr with it, as a
// browser behind nginx does.
func (c *cluster) connect(addr, user string) (*socket, error) {
	tok, err := c.token(addr, user)
	if err != nil {
		return nil, err
	}
	return c.dial(addr, tok, testenv.WSDialer{})
}

func (c *cluster) mustConnect(t *testing.T, addr, user string) *socket {
	t.Helper()
	s, err := c.connect(addr, user)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (c *cluster) publish(t *testing.T, channel, payload string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := c.rdb.Publish(ctx, channel, payload).Result()
	if err != nil {
		t.Fatalf("PUBLISH %s: %v", channel, err)
	}
	return n
}

// connectIP returns the "ip" of the "connect" line a replica logged for a
// socket, or an error while there is none.
func (c *cluster) connectIP(s *socket) (string, error) {
	for _, line := range strings.Split(c.procs[s.Node].Logs(), "\n") {
		if !strings.Contains(line, `"socket_id":"`+s.ID+`"`) {
			continue
		}
		var l struct {
			Msg string `json:"msg"`
			IP  string `json:"ip"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "connect" {
			return l.IP, nil
		}
	}
	return "", fmt.Errorf("%s logged no connect line for %s", s.Node, s.ID)
}

func (c *cluster) httpStatus(rawURL string) int {
	resp, err := c.client.Get(rawURL)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func expectText(t *testing.T, s *socket, want string) {
	t.Helper()
	got, err := s.ReadText(5 * time.Second)
	if err != nil || got != want {
		t.Fatalf("socket %s (user %s) read %q, %v; want %q", s.ID, s.User, got, err, want)
	}
}

func countNodes(ss []*socket) map[string]int {
	n := map[string]int{}
	for _, s := range ss {
		n[s.Node]++
	}
	return n
}

// TestClusterBehindNginx runs three replicas sharing one Redis behind real
// nginx configured by deploy/nginx/herald.conf, and checks what the
// deployment promises: tokens work on any replica, publishes reach every
// replica, client addresses survive the proxy, and a replica that dies or
// drains costs its clients only a reconnect through nginx.
func TestClusterBehindNginx(t *testing.T) {
	c := startCluster(t)
	lb := c.nginx.Addr

	t.Run("routes", func(t *testing.T) {
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 404, "/": 404} {
			if got := c.httpStatus("http://" + lb + path); got != want {
				t.Errorf("GET %s through nginx = %d; want %d", path, got, want)
			}
		}
		if got := c.httpStatus("http://" + c.addrs["h1"] + "/metrics"); got != 200 {
			t.Errorf("GET /metrics on a replica = %d; want 200 (scraped directly)", got)
		}
	})

	t.Run("token from one replica opens a socket on another", func(t *testing.T) {
		tok, err := c.token(c.addrs["h1"], "carol")
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.dial(c.addrs["h2"], tok, testenv.WSDialer{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Node != "h2" || s.User != "carol" {
			t.Fatalf("token minted by h1, socket on h2: welcome from %s for %q", s.Node, s.User)
		}
		// Single use across replicas: the same token on h3 is refused.
		ws, err := c.dialRaw(c.addrs["h3"], tok, testenv.WSDialer{})
		if err != nil {
			t.Fatal(err)
		}
		if cf, err := ws.ExpectClose(5 * time.Second); err != nil || cf.Code != 4003 {
			t.Fatalf("reusing h1's token on h3 after h2 consumed it: %v %v; want close 4003", cf, err)
		}
		// A token fetched through nginx, a socket straight on h3.
		tok, err = c.token(lb, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if s, err = c.dial(c.addrs["h3"], tok, testenv.WSDialer{}); err != nil || s.Node != "h3" {
			t.Fatalf("token from nginx, socket on h3: %+v %v", s, err)
		}
	})

	// alice's sockets, opened through nginx, on every replica.
	var alice []*socket
	if !t.Run("sockets through nginx reach every replica", func(t *testing.T) {
		for i := 0; i < 30; i++ {
			s := c.mustConnect(t, lb, "alice")
			alice = append(alice, s)
			n := countNodes(alice)
			if n["h1"] >= 2 && n["h2"] >= 2 && n["h3"] >= 2 {
				t.Logf("%d sockets through nginx: %v", len(alice), n)
				return
			}
		}
		t.Fatalf("30 sockets through nginx landed on %v; want at least 2 on each of h1, h2, h3", countNodes(alice))
	}) {
		return
	}

	t.Run("a publish reaches the user's sockets on every replica", func(t *testing.T) {
		bob := c.mustConnect(t, lb, "bob")
		payload := `{"type":"friend_request","id":"1","ts":1764150000000,"data":{"from":{"id":"7","name":"eve"}}}`
		if n := c.publish(t, "user:alice", payload); n != 3 {
			t.Errorf("PUBLISH user:alice reached %d replicas; want 3", n)
		}
		// Markers published after the payload: a socket whose next frame is
		// its marker received nothing else in between (Redis delivers in
		// order on each replica's subscription).
		c.publish(t, "user:alice", `{"type":"marker"}`)
		c.publish(t, "user:bob", `{"type":"marker-bob"}`)
		for _, s := range alice {
			expectText(t, s, payload)
			expectText(t, s, `{"type":"marker"}`)
		}
		expectText(t, bob, `{"type":"marker-bob"}`)
	})

	t.Run("X-Forwarded-For", func(t *testing.T) {
		spoofed := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
		cases := []struct {
			name    string
			via     string
			localIP string
			wantIP  string
		}{
			// nginx appends its peer: "203.0.113.9, 127.0.0.2". herald
			// trusts 127.0.0.1 (nginx) and takes the right-most address
			// that is not a trusted proxy: the client's, not the forgery.
			{"client 127.0.0.2 through nginx", lb, "127.0.0.2", "127.0.0.2"},
			// Straight to a replica, the peer is not a trusted proxy:
			// the header is ignored.
			{"client 127.0.0.2 direct", c.addrs["h1"], "127.0.0.2", "127.0.0.2"},
			// A client whose own address is a trusted proxy is believed:
			// the chain "203.0.113.9, 127.0.0.1" yields 203.0.113.9. This
			// is why HERALD_TRUSTED_PROXIES must name the proxies only.
			{"client 127.0.0.1 (a trusted address) through nginx", lb, "127.0.0.1", "203.0.113.9"},
		}
		for _, tc := range cases {
			tok, err := c.token(tc.via, "dave")
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.dial(tc.via, tok, testenv.WSDialer{Header: spoofed, LocalIP: tc.localIP})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var ip string
			testenv.Eventually(t, 5*time.Second, func() (err error) {
				ip, err = c.connectIP(s)
				return err
			})
			if ip != tc.wantIP {
				t.Errorf("%s, X-Forwarded-For: 203.0.113.9: %s logged ip %q; want %q", tc.name, s.Node, ip, tc.wantIP)
			}
		}
	})

	if !t.Run("a killed replica's clients reconnect through nginx", func(t *testing.T) {
		const victim = "h3"
		var orphans, survivors []*socket
		for _, s := range alice {
			if s.Node == victim {
				orphans = append(orphans, s)
			} else {
				survivors = append(survivors, s)
			}
		}
		killed := time.Now()
		c.procs[victim].Kill()
		var seen time.Duration
		for _, s := range orphans {
			msg, err := s.ReadText(5 * time.Second)
			if err == nil {
				t.Fatalf("socket %s of the killed replica read %q; want its connection to end", s.ID, msg)
			}
			var cf *testenv.CloseFrame
			if errors.As(err, &cf) {
				t.Fatalf("socket %s of the killed replica got a close frame %v", s.ID, cf)
			}
			seen = time.Since(killed)
			s.Close()
		}
		// A handshake through nginx soon goes to the dead replica (it now
		// holds the fewest sockets): nginx meets a refused connection and
		// retries elsewhere. Its error log must not quote the request line,
		// which holds the token ("no token in any log" below).
		logOffset := len(c.nginx.Stdout())
		testenv.Eventually(t, 5*time.Second, func() error {
			tok, err := c.token(c.addrs["h1"], "ivan")
			if err != nil {
				return err
			}
			s, err := c.dial(lb, tok, testenv.WSDialer{})
			if err != nil {
				t.Fatalf("handshake through nginx just after the kill: %v", err)
			}
			s.Close() // nginx logs the request now
			if s.Node == victim {
				t.Fatalf("handshake through nginx landed on the killed replica")
			}
			if !strings.Contains(c.nginx.Stdout()[logOffset:], "upstream_status=502, 101") {
				return fmt.Errorf("nginx logged no /ws handshake retried after the dead replica (upstream_status=502, 101):\n%s", c.nginx.Stdout()[logOffset:])
			}
			return nil
		})

		// Each client fetches a new token and reconnects through nginx.
		for range orphans {
			ns := c.mustConnect(t, lb, "alice")
			if ns.Node == victim {
				t.Fatalf("reconnected to the killed replica %s", victim)
			}
			survivors = append(survivors, ns)
		}
		t.Logf("%d clients of the killed replica saw their connection end within %s and were back on %v within %s of the SIGKILL",
			len(orphans), seen.Round(time.Millisecond), countNodes(survivors), time.Since(killed).Round(time.Millisecond))
		alice = survivors

		// nginx keeps minting tokens (the dead replica is skipped).
		for i := 0; i < 9; i++ {
			if _, err := c.token(lb, "erin"); err != nil {
				t.Fatalf("token %d through nginx after the kill: %v", i, err)
			}
		}
		// The other replicas' sockets, old and new, keep receiving.
		payload := `{"type":"after_kill"}`
		c.publish(t, "user:alice", payload)
		c.publish(t, "user:alice", `{"type":"marker"}`)
		for _, s := range alice {
			expectText(t, s, payload)
			expectText(t, s, `{"type":"marker"}`)
		}

		// Restarted (same address, same node id), it gets sockets again
		// (nginx never marks it down: max_fails=0).
		c.start(victim)
		restarted := time.Now()
		testenv.Eventually(t, 15*time.Second, func() error {
			s, err := c.connect(lb, "frank")
			if err != nil {
				return err
			}
			s.Close()
			if s.Node != victim {
				return fmt.Errorf("landed on %s", s.Node)
			}
			return nil
		})
		t.Logf("the restarted replica received a socket through nginx %s after it was healthy", time.Since(restarted).Round(time.Millisecond))
	}) {
		return
	}

	t.Run("a SIGTERMed replica drains while nginx sends handshakes elsewhere", func(t *testing.T) {
		const target = "h2"
		h := c.procs[target]
		var polite []*socket
		for i := 0; i < 3; i++ {
			polite = append(polite, c.mustConnect(t, c.addrs[target], "grace"))
		}
		// A client that never reads: it keeps the replica draining (with
		// its listener open) until the close timeout.
		stubborn := c.mustConnect(t, c.addrs[target], "grace")
		_ = stubborn
		// Close the sockets nginx proxies to the target: it then holds the
		// fewest, so least_conn sends it handshakes, and the test sees
		// nginx meet its 503 and retry elsewhere.
		for _, s := range c.viaLB {
			if s.Node == target {
				s.Close()
			}
		}

		logOffset := len(c.nginx.Stdout())
		termed := time.Now()
		h.Signal(syscall.SIGTERM)
		for _, s := range polite {
			msg, err := s.ReadText(5 * time.Second)
			var r struct {
				Type    string `json:"type"`
				AfterMS *int64 `json:"after_ms"`
			}
			if err != nil || json.Unmarshal([]byte(msg), &r) != nil || r.Type != "reconnect" || r.AfterMS == nil {
				t.Fatalf("after SIGTERM socket %s read %q, %v; want {\"type\":\"reconnect\",\"after_ms\":N}", s.ID, msg, err)
			}
			if *r.AfterMS < 0 || time.Duration(*r.AfterMS)*time.Millisecond >= drainWindow {
				t.Errorf("after_ms = %d; want [0, %s)", *r.AfterMS, drainWindow)
			}
			cf, err := s.ExpectClose(5 * time.Second)
			if err != nil || cf.Code != 1012 || cf.Reason != "service_restart" {
				t.Fatalf("socket %s: close %v, %v; want 1012 service_restart", s.ID, cf, err)
			}
		}
		t.Logf("the draining replica's sockets got the reconnect frame and 1012 within %s of SIGTERM", time.Since(termed).Round(time.Millisecond))

		readyz := "http://" + c.addrs[target] + "/readyz"
		if got := c.httpStatus(readyz); got != http.StatusServiceUnavailable {
			t.Fatalf("draining replica's /readyz = %d; want 503", got)
		}
		// It keeps minting tokens while it drains: they work on every
		// replica, and nginx need not retry them.
		if _, err := c.token(c.addrs[target], "grace"); err != nil {
			t.Errorf("token from the draining replica: %v; want 200", err)
		}
		// The image's healthcheck probe agrees.
		if out, err := exec.Command(healthcheckBin, "-url", readyz).CombinedOutput(); err == nil {
			t.Errorf("healthcheck on the draining replica succeeded; want exit 1 (%s)", out)
		}
		if out, err := exec.Command(healthcheckBin, "-url", "http://"+c.addrs["h1"]+"/readyz").CombinedOutput(); err != nil {
			t.Errorf("healthcheck on a ready replica: %v %s", err, out)
		}

		// Handshakes through nginx meanwhile: all succeed, elsewhere.
		var moved []*socket
		for i := 0; i < 6; i++ {
			s := c.mustConnect(t, lb, "heidi")
			if s.Node == target {
				t.Fatalf("a handshake through nginx landed on the draining replica")
			}
			moved = append(moved, s)
		}
		// The clients told to reconnect do so through nginx.
		for range polite {
			s := c.mustConnect(t, lb, "grace")
			if s.Node == target {
				t.Fatalf("a reconnect through nginx landed on the draining replica")
			}
			moved = append(moved, s)
		}
		if got := c.httpStatus(readyz); got != http.StatusServiceUnavailable {
			t.Fatalf("replica no longer draining (/readyz %d) after the handshakes: they did not test the drain", got)
		}
		t.Logf("during the drain, %d handshakes through nginx landed on %v", len(moved), countNodes(moved))

		// nginx did meet the draining replica's 503 and retried elsewhere.
		// It logs a WebSocket request when the socket ends.
		for _, s := range moved {
			s.Close()
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			var ws, retried int
			for _, line := range strings.Split(c.nginx.Stdout()[logOffset:], "\n") {
				if strings.Contains(line, `"GET /ws HTTP/1.1" 101`) {
					ws++
					if strings.Contains(line, "upstream_status=503, 101") {
						retried++
					}
				}
			}
			if ws < len(moved) || retried == 0 {
				return fmt.Errorf("%d of the %d handshakes logged, %d of them retried after a 503 (upstream_status=503, 101):\n%s",
					ws, len(moved), retried, c.nginx.Stdout()[logOffset:])
			}
			t.Logf("nginx retried %d of the %d /ws requests logged since SIGTERM on another replica after the draining one answered 503", retried, ws)
			return nil
		})

		// The stubborn socket is dropped at the close timeout; then the
		// replica closes its listener and exits cleanly.
		if err := h.Wait(closeTimeout + 10*time.Second); err != nil {
			t.Fatalf("draining replica: %v", err)
		}
		t.Logf("the replica exited %s after SIGTERM (one client never answered the close; close timeout %s)", time.Since(termed).Round(time.Millisecond), closeTimeout)
		if !strings.Contains(h.Logs(), `"msg":"drained"`) {
			t.Errorf("no \"drained\" line in the replica's log")
		}
	})

	t.Run("no token in any log", func(t *testing.T) {
		logs := map[string]string{"nginx": c.nginx.AllLogs()}
		for i, h := range c.all {
			logs[fmt.Sprintf("herald process %d (%s)", i, h.Addr)] = h.Logs()
		}
		names := keys(logs)
		sort.Strings(names)
		for _, name := range names {
			l := logs[name]
			if strings.Contains(l, "token=") {
				t.Errorf("%s logged a /ws query string", name)
			}
			for _, tok := range c.tokens {
				if strings.Contains(l, tok) {
					t.Errorf("%s logged a WS token", name)
					break
				}
			}
		}
		if strings.Contains(c.nginx.ErrorLog()+c.nginx.Stderr(), "/ws?") {
			t.Errorf("nginx's error log quotes a /ws request line:\n%s", c.nginx.ErrorLog())
		}
		if !strings.Contains(c.nginx.Stdout(), `"GET /ws HTTP/1.1" 101`) {
			t.Errorf("nginx's access log has no /ws line:\n%s", c.nginx.Stdout())
		}
	})
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
