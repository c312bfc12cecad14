package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	clientjs "github.com/herald-gw/herald/clients/js"
	"github.com/herald-gw/herald/internal/testenv"
)

// devServer is a herald --dev process and a client that talks to it.
type devServer struct {
	h    *testenv.Herald
	base string // http://127.0.0.1:port
}

func startDev(t *testing.T, args ...string) *devServer {
	t.Helper()
	addr := testenv.FreeAddr(t)
	args = append([]string{"--dev", "--addr", addr, "--drain-window", "200ms"}, args...)
	h := testenv.StartHerald(t, heraldBin, addr, nil, args...)
	return &devServer{h: h, base: "http://" + addr}
}

// do sends method path with the Host and Origin headers given ("" for the
// default Host, or no Origin) and returns the status, headers and body.
func (d *devServer) do(t *testing.T, method, path, host, origin, cookie string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, d.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// login returns the Cookie header value of a session for user.
func (d *devServer) login(t *testing.T, user string) string {
	t.Helper()
	status, hdr, body := d.do(t, "POST", "/dev/login?user="+url.QueryEscape(user), "", "", "")
	if status != 200 {
		t.Fatalf("dev login: %d %s", status, body)
	}
	c, err := http.ParseSetCookie(hdr.Get("Set-Cookie"))
	if err != nil {
		t.Fatalf("dev login cookie: %v", err)
	}
	return c.Name + "=" + c.Value
}

// token fetches a WS token with the session cookie.
func (d *devServer) token(t *testing.T, cookie string) string {
	t.Helper()
	status, _, body := d.do(t, "POST", "/api/ws/token", "", "", cookie)
	var tok struct{ Token string }
	if status != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("token: %d %s", status, body)
	}
	return tok.Token
}

// upgrade sends a WebSocket handshake for /ws?token=… with host and origin
// and returns the status line's code and, on 101, the first text frame.
func (d *devServer) upgrade(t *testing.T, token, host, origin string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(d.base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /ws?token=" + url.QueryEscape(token) + " HTTP/1.1\r\nHost: " + host +
		"\r\nOrigin: " + origin + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	// One unmasked server text frame with a short payload: 0x81, length.
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return resp.StatusCode, ""
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		io.ReadFull(br, ext)
		n = int(ext[0])<<8 | int(ext[1])
	}
	payload := make([]byte, n)
	io.ReadFull(br, payload)
	return resp.StatusCode, string(payload)
}

// TestDevRefusesForeignHost is the DNS-rebinding defence: a page on
// rebind.attacker.test whose name resolves to 127.0.0.1 reaches herald --dev
// with that Host (and a matching Origin, so the same-origin rule passes).
// It must get neither a session, nor a token, nor a socket, while loopback
// names keep working.
func TestDevRefusesForeignHost(t *testing.T) {
	d := startDev(t)
	port := d.base[strings.LastIndexByte(d.base, ':')+1:]
	evil := "rebind.attacker.test:" + port
	evilOrigin := "http://" + evil

	status, hdr, body := d.do(t, "POST", "/dev/login?user=42", evil, evilOrigin, "")
	if status != http.StatusForbidden || hdr.Get("Set-Cookie") != "" {
		t.Errorf("/dev/login with Host %s: %d %q (cookie %q), want 403 and no cookie", evil, status, body, hdr.Get("Set-Cookie"))
	}

	cookie := d.login(t, "42")
	status, _, body = d.do(t, "POST", "/api/ws/token", evil, evilOrigin, cookie)
	if status != http.StatusForbidden || strings.Contains(body, "token\"") {
		t.Errorf("/api/ws/token with Host %s: %d %q, want 403 and no token", evil, status, body)
	}

	status, first := d.upgrade(t, d.token(t, cookie), evil, evilOrigin)
	if status != http.StatusForbidden {
		t.Errorf("/ws with Host %s: %d %q, want 403 before the upgrade", evil, status, first)
	}

	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port, "app.localhost:" + port, "127.0.0.1"} {
		status, first := d.upgrade(t, d.token(t, cookie), host, "http://"+host)
		if status != http.StatusSwitchingProtocols || !strings.Contains(first, `"type":"welcome"`) {
			t.Errorf("/ws with Host %s: %d %q, want 101 and the welcome", host, status, first)
		}
	}
	for _, host := range []string{"", "127.0.0.1.attacker.test:" + port, "localhost.attacker.test", "10.0.0.1:" + port, "[::ffff:10.0.0.1]:" + port} {
		req := "GET /healthz HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		if got := rawStatus(t, d.base, req); got != http.StatusForbidden && got != http.StatusBadRequest {
			t.Errorf("GET /healthz with Host %q: %d, want it refused", host, got)
		}
	}
}

// rawStatus sends one raw HTTP request and returns the response's status.
func rawStatus(t *testing.T, base, req string) int {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("response to %q: %v", req, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevRefusesRealSettings: --dev mints sessions for anyone, so it must
// not be given a real session key, a shared WS token secret or any Redis
// setting: a URL, Sentinel or Cluster seeds, or a tuning of the Redis link
// (its sessions would then open sockets elsewhere, and its users would
// receive real users' messages). It refuses them, and never echoes them.
func TestDevRefusesRealSettings(t *testing.T) {
	secret := "real-secret-" + strings.Repeat("x", 40)
	pem := writeFile(t, "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"session secret flag", []string{"--session-secret", secret}, nil, "--session-secret"},
		{"session secret env", nil, []string{"HERALD_SESSION_SECRET=" + secret}, "--session-secret"},
		{"session secret file", nil, []string{"HERALD_SESSION_SECRET_FILE=" + writeFile(t, secret+"\n")}, "--session-secret"},
		{"ws token secret", []string{"--ws-token-secret", secret}, nil, "--ws-token-secret"},
		{"public key", []string{"--session-public-key", pem}, nil, "--session-public-key"},
		{"jwks", []string{"--session-jwks", "https://login.example.test/jwks.json"}, nil, "--session-jwks"},
		{"redis url", []string{"--redis-url", "redis://:" + secret + "@127.0.0.1:1/0"}, nil, "--redis-url"},
		{"redis url env", nil, []string{"HERALD_REDIS_URL=redis://:" + secret + "@127.0.0.1:1/0"}, "--redis-url"},
		{"redis cluster", []string{"--redis-cluster", "redis://:" + secret + "@127.0.0.1:1,127.0.0.1:2"}, nil, "--redis-cluster"},
		{"redis cluster env", nil, []string{"HERALD_REDIS_CLUSTER=127.0.0.1:1,127.0.0.1:2"}, "--redis-cluster"},
		{"sentinel url", []string{"--redis-url", "redis-sentinel://:" + secret + "@127.0.0.1:1/mymaster?sentinel_password=" + secret}, nil, "--redis-url"},
		{"sentinel url env", nil, []string{"HERALD_REDIS_URL=redis-sentinel://127.0.0.1:1,127.0.0.1:2/mymaster"}, "--redis-url"},
		{"redis timeout", []string{"--redis-timeout", "1s"}, nil, "--redis-timeout"},
		{"redis health interval env", nil, []string{"HERALD_REDIS_HEALTH_INTERVAL=1s"}, "--redis-health-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			args := append([]string{"--dev", "--addr", "127.0.0.1:0"}, tt.args...)
			cmd := exec.CommandContext(ctx, heraldBin, args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("herald --dev started with %s; want a refusal\n%s", tt.name, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output does not name %s:\n%s", tt.want, out)
			}
			if strings.Contains(string(out), secret) {
				t.Errorf("output echoes the supplied secret:\n%s", out)
			}
		})
	}
}

// TestDevPrintsGeneratedSecrets: what --dev prints are the secrets it made,
// and they are the ones it uses (a session signed with the printed secret
// is accepted).
func TestDevPrintsGeneratedSecrets(t *testing.T) {
	d := startDev(t)
	testenv.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(d.h.Logs(), "ws token secret") {
			return io.ErrUnexpectedEOF
		}
		return nil
	})
	logs := d.h.Logs()
	secret := fieldAfter(logs, "session secret (HS256):")
	if len(secret) != 64 {
		t.Fatalf("printed session secret %q, want 64 hex digits\n%s", secret, logs)
	}
	jwt, err := auth.SignDevSession([]byte(secret), "HS256", "7", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, body := d.do(t, "POST", "/api/ws/token", "", "", "access_token="+jwt); status != 200 {
		t.Errorf("a session signed with the printed secret: %d %s, want a token", status, body)
	}
	if !strings.Contains(logs, "generated") {
		t.Errorf("the output does not say the secrets were generated:\n%s", logs)
	}
}

func fieldAfter(s, label string) string {
	_, rest, ok := strings.Cut(s, label)
	if !ok {
		return ""
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func TestLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1", true},
		{"127.9.9.9:1", true},
		{"localhost:8080", true},
		{"LOCALHOST", true},
		{"localhost.:8080", true},
		{"app.localhost:8080", true},
		{"[::1]:8080", true},
		{"[::1]", true},
		{"[::ffff:127.0.0.1]:8080", true},
		{"", false},
		{"rebind.attacker.test:8080", false},
		{"localhost.attacker.test", false},
		{"127.0.0.1.attacker.test", false},
		{"notlocalhost:8080", false},
		{"0.0.0.0:8080", false},
		{"10.0.0.1:8080", false},
		{"[::]:8080", false},
		{"[::ffff:10.0.0.1]:8080", false},
		{"192.168.1.2", false},
	} {
		if got := loopbackHost(tc.host); got != tc.want {
			t.Errorf("loopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

// TestDevDemoEndpoints: the demo's routes. A scoped login's cookie is sent
// only under /dev/as/<id>/, where herald's token endpoint answers too;
// /dev/publish goes through the broker like a backend's PUBLISH (a socket
// receives it; herald:control closes with 4000); /dev/online lists the
// users; the page and the client module are served; a cross-origin POST is
// refused.
func TestDevDemoEndpoints(t *testing.T) {
	d := startDev(t)
	status, hdr, body := d.do(t, "POST", "/dev/as/alice/login", "", "", "")
	c, err := http.ParseSetCookie(hdr.Get("Set-Cookie"))
	if status != 200 || err != nil || c.Path != "/dev/as/alice/" || !c.HttpOnly {
		t.Fatalf("scoped login: %d %q cookie %+v %v, want 200 and an httpOnly cookie on /dev/as/alice/", status, body, c, err)
	}
	cookie := c.Name + "=" + c.Value
	status, _, body = d.do(t, "POST", "/dev/as/alice/api/ws/token", "", "", cookie)
	var tok struct{ Token string }
	if status != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.Token == "" {
		t.Fatalf("scoped token: %d %s", status, body)
	}
	if status, _, _ := d.do(t, "POST", "/dev/as/alice/api/ws/token", "", "", ""); status != 401 {
		t.Errorf("scoped token without the cookie: %d, want 401", status)
	}
	for _, bad := range []string{"/dev/as/a%2Fb/login", "/dev/as/" + strings.Repeat("x", 33) + "/login", "/dev/as/%20/login"} {
		if status, _, _ := d.do(t, "POST", bad, "", "", ""); status != 400 && status != 404 {
			t.Errorf("POST %s: %d, want it refused", bad, status)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := testenv.DialWS(ctx, "ws"+strings.TrimPrefix(d.base, "http")+"/ws?token="+url.QueryEscape(tok.Token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if msg, err := ws.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, `"user_id":"alice"`) {
		t.Fatalf("welcome = %q %v", msg, err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		_, _, body := d.do(t, "GET", "/dev/online", "", "", "")
		if strings.TrimSpace(body) != `{"users":["alice"],"known":["alice"]}` {
			return fmt.Errorf("/dev/online = %s", body)
		}
		return nil
	})

	publish := func(channel, payload, origin string) int {
		req, _ := http.NewRequest("POST", d.base+"/dev/publish?channel="+url.QueryEscape(channel), strings.NewReader(payload))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		channel, payload, origin string
		want                     int
	}{
		{"user:alice", `{"type":"friend_request","id":"1"}`, "", 204},
		{"user:alice", `{"type":"cross"}`, "https://evil.example", 403},
		{"user:alice", `{"type":"from the page"}`, d.base, 204},
		{"nowhere", `{}`, "", 400},
		{"user:alice", "", "", 400},
		{"user:alice", "\xff\xfe", "", 400},
		{"herald:control", `{"op":"explode"}`, "", 400},
		{"user:alice", `not an object`, "", 400}, // the inbox takes JSON objects
		// The inbox splices inbox_id in: a payload may not carry its own.
		{"user:alice", `{"inbox_id":"9999999999999-0","type":"x"}`, "", 400},
		{"user:alice", `{"type":"x", "inbox\u005fid":"1-0"}`, "", 400},
		{"broadcast", `not an object`, "", 204},
		{"user:alice", `{"type":"resync"}`, "", 400}, // herald's own frame types: it would not relay them
		{"broadcast", `{"type":"reconnect","after_ms":864000000}`, "", 400},
	} {
		if got := publish(tc.channel, tc.payload, tc.origin); got != tc.want {
			t.Errorf("publish %s %q (Origin %q): %d, want %d", tc.channel, tc.payload, tc.origin, got, tc.want)
		}
	}
	// Through the inbox: each user event arrives with its inbox_id first.
	for _, want := range []string{`"type":"friend_request","id":"1"}`, `"type":"from the page"}`, `not an object`} {
		if msg, err := ws.ReadText(5 * time.Second); !strings.HasSuffix(msg, want) {
			t.Fatalf("socket got %q %v, want %s", msg, err, want)
		}
	}
	if got := publish("herald:control", `{"op":"disconnect","user_id":"alice","reason":"logout"}`, ""); got != 204 {
		t.Fatalf("control publish: %d", got)
	}
	if cf, err := ws.ExpectClose(5 * time.Second); err != nil || cf.Code != 4000 {
		t.Fatalf("after the control publish: %v %v, want close 4000", cf, err)
	}

	if status, hdr, body := d.do(t, "GET", "/herald.js", "", "", ""); status != 200 || body != string(clientjs.Module) || !strings.HasPrefix(hdr.Get("Content-Type"), "text/javascript") {
		t.Errorf("/herald.js: %d %s, want the client module as JavaScript", status, hdr.Get("Content-Type"))
	}
	if status, _, body := d.do(t, "GET", "/", "", "", ""); status != 200 || !strings.Contains(body, `src="/demo.js"`) {
		t.Errorf("/: %d, want the demo page", status)
	}
	if status, _, body := d.do(t, "GET", "/demo.js", "", "", ""); status != 200 || !strings.Contains(body, `from "/herald.js"`) {
		t.Errorf("/demo.js: %d, want the demo script importing the client", status)
	}
	if status, _, _ := d.do(t, "POST", "/dev/login?user=1", "", "https://evil.example", ""); status != 403 {
		t.Errorf("cross-origin /dev/login: %d, want 403", status)
	}
	for _, path := range []string{"/favicon.ico", "/favicon.svg"} {
		if status, hdr, body := d.do(t, "GET", path, "", "", ""); status != 200 || hdr.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(body, "<svg") {
			t.Errorf("%s: %d %s, want the demo's icon", path, status, hdr.Get("Content-Type"))
		}
	}
}

// TestDevKnownUsers: /dev/online also lists the demo users who logged in
// since herald started, online or not, so that the demo can send to an
// offline user (the event waits in the inbox); the list is bounded.
func TestDevKnownUsers(t *testing.T) {
	d := startDev(t)
	for _, u := range []string{"carol", "alice", "bob", "alice"} {
		if status, _, body := d.do(t, "POST", "/dev/as/"+u+"/login", "", "", ""); status != 200 {
			t.Fatalf("login %s: %d %s", u, status, body)
		}
	}
	if _, _, body := d.do(t, "GET", "/dev/online", "", "", ""); strings.TrimSpace(body) != `{"users":[],"known":["alice","bob","carol"]}` {
		t.Fatalf("/dev/online = %s, want nobody online and the three known users", body)
	}
	for i := range devKnownMax + 10 {
		d.do(t, "POST", fmt.Sprintf("/dev/as/u%d/login", i), "", "", "")
	}
	var got struct{ Known []string }
	_, _, body := d.do(t, "GET", "/dev/online", "", "", "")
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Known) != devKnownMax {
		t.Fatalf("%d known users after %d logins, want the bound %d", len(got.Known), devKnownMax+14, devKnownMax)
	}
}

// TestNoDevRoutesWithoutDev: without --dev, none of the development routes
// exist, and a foreign Host is none of herald's business (it is behind a
// load balancer that routes by name).
func TestNoDevRoutesWithoutDev(t *testing.T) {
	addr := testenv.FreeAddr(t)
	testenv.StartHerald(t, heraldBin, addr, []string{"HERALD_SESSION_SECRET=" + strings.Repeat("s", 32)}, "--standalone", "--addr", addr)
	d := &devServer{base: "http://" + addr}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/dev/login?user=42"},
		{"POST", "/dev/as/alice/login"},
		{"POST", "/dev/as/alice/api/ws/token"},
		{"POST", "/dev/publish?channel=user:42"},
		{"GET", "/dev/online"},
		{"GET", "/herald.js"},
		{"GET", "/"},
	} {
		if status, _, _ := d.do(t, tc.method, tc.path, "", "", ""); status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s without --dev: %d, want 404", tc.method, tc.path, status)
		}
	}
	if status, _, _ := d.do(t, "GET", "/healthz", "herald.example.com", "", ""); status != 200 {
		t.Errorf("/healthz with Host herald.example.com without --dev: %d, want 200", status)
	}
}
