package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
)

func TestWelcome(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.NodeID = "node-a" }})
	_, w := h.connect("42")
	if w.UserID != "42" || w.HeartbeatS != 30 || !strings.HasPrefix(w.SocketID, "node-a.") {
		t.Fatalf("welcome = %+v, want user 42, heartbeat 30, socket id node-a.*", w)
	}
	if got := h.srv.UserSockets("42"); len(got) != 1 || got[0].ID != w.SocketID || got[0].RemoteIP != "127.0.0.1" {
		t.Fatalf("UserSockets = %+v, want the one socket from 127.0.0.1", got)
	}
}

// signJWT signs claims as a compact HS256 JWS with the given typ header.
func signJWT(t *testing.T, secret []byte, typ string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, typ)
	b, err := jws.Sign(payload, jws.WithKey(jwa.HS256, secret, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wsToken signs a WS token by hand, for the cases the endpoint never mints.
func wsToken(t *testing.T, secret []byte, typ, aud, jti string, exp time.Time) string {
	claims := map[string]any{"sub": "42", "aud": aud, "iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix()}
	if jti != "" {
		claims["jti"] = jti
	}
	return signJWT(t, secret, typ, claims)
}

// expiredSession is a session JWT that expired an hour ago.
func expiredSession(t *testing.T) string {
	return signJWT(t, sessionSecret, "JWT", map[string]any{
		"sub": "42", "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
	})
}

func TestHandshakeRefusals(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.AllowedOrigins = []string{"https://app.example.com"}
	}})
	valid := h.token("42")
	if c, err := h.dial(valid); err != nil {
		t.Fatal(err)
	} else {
		c.ReadText(5 * time.Second) // consume the token
		c.Close()
	}
	tests := []struct {
		name   string
		token  string
		code   int
		reason string
	}{
		{"reused", valid, 4003, "token_reused"},
		{"expired", wsToken(t, wsSecret, "herald-ws+jwt", "herald-ws", uuid.NewString(), time.Now().Add(-time.Minute)), 4001, "token_expired"},
		{"missing", "", 4002, "token_invalid"},
		{"garbage", "abc.def.ghi", 4002, "token_invalid"},
		{"signed with another secret", wsToken(t, []byte("another-ws-secret-of-at-least-32-bytes"), "herald-ws+jwt", "herald-ws", uuid.NewString(), time.Now().Add(time.Minute)), 4002, "token_invalid"},
		{"session JWT as WS token", h.session("42"), 4002, "token_invalid"},
		{"wrong typ", wsToken(t, wsSecret, "JWT", "herald-ws", uuid.NewString(), time.Now().Add(time.Minute)), 4002, "token_invalid"},
		{"no jti", wsToken(t, wsSecret, "herald-ws+jwt", "herald-ws", "", time.Now().Add(time.Minute)), 4002, "token_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := h.dial(tt.token)
			if err != nil {
				t.Fatalf("the upgrade must succeed so the browser can read the close code: %v", err)
			}
			defer c.Close()
			expectClose(t, c, tt.code, tt.reason)
		})
	}
	t.Run("origin refused before the upgrade", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := testenv.DialWS(ctx, h.ws+"?token="+h.token("42"), http.Header{"Origin": {"https://evil.example.net"}})
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != 403 {
			t.Fatalf("dial error = %v, want HTTP 403", err)
		}
	})
	t.Run("allowed origin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := testenv.DialWS(ctx, h.ws+"?token="+h.token("42"), http.Header{"Origin": {"https://app.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if msg, err := c.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, `"welcome"`) {
			t.Fatalf("got %q, %v; want welcome", msg, err)
		}
	})
}

// TestOneTokenOneSocket dials 40 sockets at once with the same token: exactly
// one is welcomed and the rest are told the token was reused.
func TestOneTokenOneSocket(t *testing.T) {
	stores := map[string]func(t *testing.T) replay.Store{
		"memory": func(t *testing.T) replay.Store { return replay.NewMemory(replay.MemoryConfig{}) },
		"redis": func(t *testing.T) replay.Store {
			// A loaded machine can hold Redis' answer past the 500 ms
			// default, and herald then rightly answers 1013: not what
			// this test is about.
			return must(replay.NewRedis(testenv.StartRedis(t).Client(), replay.RedisConfig{Timeout: 5 * time.Second}))
		},
	}
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			testenv.NoLeaks(t)
			h := start(t, harnessOpts{store: newStore(t)})
			for round := range 3 {
				counts := raceOneToken(h.token("42"), []*harness{h})
				if counts["welcome"] != 1 || counts["token_reused"] != 39 {
					t.Fatalf("round %d: outcomes %v, want 1 welcome and 39 token_reused", round, counts)
				}
			}
		})
	}
}

// raceOneToken dials 40 sockets with one token at the same moment, spread
// over the replicas, and counts the outcomes: "welcome" or a close reason.
func raceOneToken(token string, replicas []*harness) map[string]int {
	var wg sync.WaitGroup
	outcomes := make(chan string, 40)
	gate := make(chan struct{})
	for i := range 40 {
		h := replicas[i%len(replicas)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			c, err := h.dial(token)
			if err != nil {
				outcomes <- "dial error: " + err.Error()
				return
			}
			defer c.Close()
			msg, err := c.ReadText(5 * time.Second)
			var cf *testenv.CloseFrame
			switch {
			case err == nil && strings.Contains(msg, `"welcome"`):
				outcomes <- "welcome"
			case errors.As(err, &cf):
				outcomes <- cf.Reason
			default:
				outcomes <- fmt.Sprintf("unexpected %q %v", msg, err)
			}
		}()
	}
	close(gate)
	wg.Wait()
	close(outcomes)
	counts := map[string]int{}
	for o := range outcomes {
		counts[o]++
	}
	return counts
}

func TestReplayStoreDownFailsClosed(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	h := start(t, harnessOpts{store: must(replay.NewRedis(r.Client(), replay.RedisConfig{Timeout: 300 * time.Millisecond}))})
	token := h.token("42")
	r.Kill()
	c, err := h.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClose(t, c, 1013, "try_again_later")
	r.Start()
	// Redis came back without its data: it cannot tell whether a token
	// minted before it started was used, so that token is refused, as
	// expired (4001) or, when Redis cannot tell whether it started before
	// the minting (its uptime is whole seconds), with 1013; either way the
	// client fetches a new one.
	c2, err := h.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cf, err := c2.ExpectClose(5 * time.Second)
	if err != nil || (cf.Code != 4001 && cf.Code != 1013) {
		t.Fatalf("old token after the restart: got %v %v, want close 4001 or 1013", cf, err)
	}
	r.WaitUptime()
	c3, err := h.dial(h.token("42"))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if msg, err := c3.ReadText(5 * time.Second); err != nil || !strings.Contains(msg, "welcome") {
		t.Fatalf("a new token after Redis came back: %q %v, want welcome", msg, err)
	}
}

func TestClientPing(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	c, _ := h.connect("42")
	for _, ping := range []string{`{"type":"ping"}`, `{ "type": "ping", "n": 1 }`} {
		if err := c.WriteText(ping); err != nil {
			t.Fatal(err)
		}
		if msg, err := c.ReadText(5 * time.Second); err != nil || msg != `{"type":"pong"}` {
			t.Fatalf("after %s got %q %v, want {\"type\":\"pong\"}", ping, msg, err)
		}
	}
	// A WebSocket ping frame gets a pong frame with the same payload.
	if err := c.WriteFrame(ws.OpPing, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadFrame(5 * time.Second)
	if err != nil || f.Op != ws.OpPong || string(f.Payload) != "abc" {
		t.Fatalf("got %v %q %v, want pong abc", f.Op, f.Payload, err)
	}
	// Other messages are ignored: the socket stays open.
	c.WriteText(`{"type":"something"}`)
	c.WriteFrame(ws.OpBinary, []byte{1, 2, 3})
	c.WriteText(`{"type":"ping"}`)
	if msg, err := c.ReadText(5 * time.Second); err != nil || msg != `{"type":"pong"}` {
		t.Fatalf("got %q %v, want pong after ignored messages", msg, err)
	}
}

func TestInboundLimits(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.MaxMessageBytes = 1024 }})
	tests := []struct {
		name   string
		send   func(c *testenv.WSClient) error
		code   int
		reason string
	}{
		{"message too big", func(c *testenv.WSClient) error {
			return c.WriteText(strings.Repeat("x", 1025))
		}, 1009, "message_too_big"},
		{"fragments too big", func(c *testenv.WSClient) error {
			f1 := ws.MaskFrameInPlace(ws.NewFrame(ws.OpText, false, []byte(strings.Repeat("x", 600))))
			f2 := ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, true, []byte(strings.Repeat("x", 600))))
			if err := ws.WriteFrame(c.Conn, f1); err != nil {
				return err
			}
			return ws.WriteFrame(c.Conn, f2)
		}, 1009, "message_too_big"},
		{"unmasked frame", func(c *testenv.WSClient) error {
			return ws.WriteFrame(c.Conn, ws.NewTextFrame([]byte("hi")))
		}, 1002, "protocol_error"},
		{"reserved opcode", func(c *testenv.WSClient) error {
			return c.WriteFrame(ws.OpCode(0xB), nil)
		}, 1002, "protocol_error"},
		{"invalid utf-8", func(c *testenv.WSClient) error {
			return c.WriteFrame(ws.OpText, []byte{'a', 0xff, 0xfe})
		}, 1007, "invalid_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := h.connect("42")
			if err := tt.send(c); err != nil {
				t.Fatal(err)
			}
			expectClose(t, c, tt.code, tt.reason)
		})
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := h.srv.Sockets(); n != 0 {
			return errors.New("sockets still registered")
		}
		return nil
	})
}

func TestClientClose(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	c, _ := h.connect("42")
	if err := c.WriteFrame(ws.OpClose, ws.NewCloseFrameBody(1000, "bye")); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadFrame(5 * time.Second)
	if err != nil || f.Op != ws.OpClose {
		t.Fatalf("got %v %v, want the close echoed", f.Op, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != 1000 {
		t.Fatalf("echoed code %d, want 1000", code)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if h.srv.Sockets() != 0 || len(h.logs.lines("disconnect")) == 0 {
			return errors.New("socket still registered")
		}
		return nil
	})
	lines := h.logs.lines("disconnect")
	if len(lines) != 1 || lines[0]["code"] != float64(1000) || lines[0]["user"] != "42" {
		t.Fatalf("disconnect log lines = %v, want one with code 1000 for user 42", lines)
	}
}

func TestPerUserCap(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.MaxSocketsPerUser = 3 }})
	for range 3 {
		h.connect("42")
	}
	c, err := h.dial(h.token("42"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClose(t, c, 4008, "too_many_connections")
	if n := len(h.srv.UserSockets("42")); n != 3 {
		t.Fatalf("user has %d sockets, want 3", n)
	}
	h.connect("43") // other users are not affected
}

func TestHandshakeRateLimit(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.HandshakeRate = 0.01
		c.HandshakeBurst = 2
	}})
	h.connect("1")
	h.connect("2")
	c, err := h.dial(h.token("3"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClose(t, c, 4029, "rate_limited")
}

// TestHandshakePacing: handshakes over --handshake-rate wait for their
// turn instead of being refused, when it comes within half the time the
// handshake has left.
func TestHandshakePacing(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.HandshakeRate = 4
		c.HandshakeBurst = 1
	}})
	tokens := make([]string, 4)
	for i := range tokens {
		tokens[i] = h.token(strconv.Itoa(100 + i))
	}
	began := time.Now()
	errs := make(chan error, len(tokens))
	for _, tok := range tokens {
		go func() {
			c, err := h.dial(tok)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg, err := c.ReadText(5 * time.Second)
			if err == nil && !strings.Contains(msg, `"type":"welcome"`) {
				err = fmt.Errorf("first frame %s, want the welcome", msg)
			}
			errs <- err
		}()
	}
	for range tokens {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One token at once, then one every 250 ms: the last waited 750 ms.
	if took := time.Since(began); took < 600*time.Millisecond {
		t.Errorf("4 handshakes at 4/s with a burst of 1 took %v: not paced", took)
	}
	if n := h.metric("herald_handshakes_paced_total"); n != 3 {
		t.Errorf("herald_handshakes_paced_total = %v, want 3", n)
	}
	if n := h.metric(`herald_auth_failures_total{reason="rate_limited"}`); n != 0 {
		t.Errorf("%v handshakes refused as rate_limited, want 0", n)
	}
}

// TestHandshakePacingDrain: a handshake waiting for its turn when the
// replica starts draining gets 1012 at once, not at its turn.
func TestHandshakePacingDrain(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.HandshakeRate = 0.2 // the second handshake's turn is 5 s away
		c.HandshakeBurst = 1
		c.HandshakeTimeout = 20 * time.Second
	}})
	h.connect("1")
	// The handshake waits for its turn before its upgrade: the dial
	// returns once the drain has let it go.
	tok := h.token("2")
	dialed := make(chan *testenv.WSClient, 1)
	go func() {
		c, err := h.dial(tok)
		if err != nil {
			t.Error(err)
		}
		dialed <- c
	}()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := h.metric("herald_handshakes_paced_total"); n != 1 {
			return fmt.Errorf("herald_handshakes_paced_total = %v, want 1", n)
		}
		return nil
	})
	began := time.Now()
	down := make(chan struct{})
	go func() {
		defer close(down)
		h.shutdown(10 * time.Second)
	}()
	c := <-dialed
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	expectClose(t, c, 1012, "service_restart")
	if took := time.Since(began); took > 3*time.Second {
		t.Errorf("the paced handshake was closed %v after the drain began: it waited for its turn", took)
	}
	<-down
}

// TestSecretsStayOutOfLogs runs the whole flow, then checks that no token,
// cookie value or /ws query string reached the log.
func TestSecretsStayOutOfLogs(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	session := h.session("42")
	token := h.token("42")
	c, err := h.dial(token)
	if err != nil {
		t.Fatal(err)
	}
	c.ReadText(5 * time.Second)
	c.Close()
	reused, _ := h.dial(token)
	expectClose(t, reused, 4003, "token_reused")
	reused.Close()
	bad := h.post("/api/ws/token", map[string]string{"Cookie": "access_token=" + session + "x"})
	bad.Body.Close()
	expired := expiredSession(t)
	bad = h.post("/api/ws/token", map[string]string{"Authorization": "Bearer " + expired})
	bad.Body.Close()

	testenv.Eventually(t, 5*time.Second, func() error {
		if len(h.logs.lines("disconnect")) < 1 {
			return errors.New("no disconnect line yet")
		}
		return nil
	})
	logs := h.logs.String()
	for name, secret := range map[string]string{"session": session, "ws token": token, "expired session": expired} {
		for _, part := range strings.Split(secret, ".") {
			if strings.Contains(logs, part) {
				t.Errorf("a part of the %s reached the log", name)
			}
		}
	}
	if strings.Contains(logs, "token=") {
		t.Error("a /ws query string reached the log")
	}
	if n := len(h.logs.lines("connect")); n != 1 {
		t.Errorf("%d connect lines, want 1", n)
	}
	for _, reason := range []string{"token_reused", "invalid_session", "expired_session"} {
		found := false
		for _, l := range h.logs.lines("auth failure") {
			if l["reason"] == reason && l["ip"] == "127.0.0.1" {
				found = true
			}
		}
		if !found {
			t.Errorf("no auth failure line with reason %s and the client ip", reason)
		}
	}
}
