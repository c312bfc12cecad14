package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// rawConn is a client on a plain TCP connection, for requests written
// byte by byte, pipelined or malformed.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (h *harness) rawDial(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// response reads one HTTP response head and body.
func (r *rawConn) response() (*http.Response, string) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// frame reads one server frame.
func (r *rawConn) frame() (ws.OpCode, string) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := ws.ReadHeader(r.br)
	if err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(r.br, p); err != nil {
		r.t.Fatalf("read frame: %v", err)
	}
	return h.OpCode, string(p)
}

// upgradeRequest is a browser's GET /ws with token and extra header lines.
func upgradeRequest(token string, extra ...string) []byte {
	var b bytes.Buffer
	b.WriteString("GET /ws?token=" + url.QueryEscape(token) + " HTTP/1.1\r\nHost: herald.test\r\n")
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n")
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nUser-Agent: demux-test\r\n")
	for _, l := range extra {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// expectWelcome reads the 101 and the welcome frame.
func (r *rawConn) expectWelcome(user string) {
	r.t.Helper()
	resp, _ := r.response()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		r.t.Fatalf("response = %d %v, want 101 with the key's accept", resp.StatusCode, resp.Header)
	}
	if op, msg := r.frame(); op != ws.OpText || !strings.Contains(msg, `"type":"welcome"`) || !strings.Contains(msg, `"user_id":"`+user+`"`) {
		r.t.Fatalf("first frame = %v %s, want %s's welcome", op, msg, user)
	}
}

// TestDemuxServesHTTPOnTheSameListener: requests that are not an upgrade of
// /ws reach net/http on the listener the upgrades use, pipelined ones
// included, and answer as before.
func TestDemuxServesHTTPOnTheSameListener(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	tests := []struct {
		name    string
		request string
		status  []int // one per pipelined request
	}{
		{"health", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", []int{200}},
		{"pipelined", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", []int{200, 200}},
		{"a longer path", "GET /wsx HTTP/1.1\r\nHost: x\r\n\r\n", []int{404}},
		{"a sub path", "GET /ws/ HTTP/1.1\r\nHost: x\r\n\r\n", []int{404}},
		{"another method on /ws", "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", []int{405}},
		{"preflight", "OPTIONS /api/ws/token HTTP/1.1\r\nHost: x\r\n\r\n", []int{204}},
		{"short", "G", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.rawDial(t)
			r.write([]byte(tt.request))
			if tt.status == nil { // net/http waits for more; the token endpoint still works beside it
				if tok := h.token("7"); tok == "" {
					t.Fatal("no token")
				}
				return
			}
			for i, want := range tt.status {
				if resp, body := r.response(); resp.StatusCode != want {
					t.Fatalf("response %d = %d %s, want %d", i, resp.StatusCode, body, want)
				}
			}
		})
	}
	// And a WS token from the token endpoint opens a socket on that listener.
	r := h.rawDial(t)
	r.write(upgradeRequest(h.token("8")))
	r.expectWelcome("8")
}

// TestUpgradeByteByByte: a client that writes its request one byte at a
// time, and one that writes frames right behind its request, are welcomed.
func TestUpgradeByteByByte(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	t.Run("byte by byte", func(t *testing.T) {
		r := h.rawDial(t)
		for _, b := range upgradeRequest(h.token("1")) {
			r.write([]byte{b})
		}
		r.expectWelcome("1")
	})
	t.Run("frames behind the request", func(t *testing.T) {
		r := h.rawDial(t)
		var ping bytes.Buffer
		if err := ws.WriteFrame(&ping, ws.MaskFrameInPlace(ws.NewTextFrame([]byte(`{"type":"ping"}`)))); err != nil {
			t.Fatal(err)
		}
		r.write(append(upgradeRequest(h.token("2")), ping.Bytes()...))
		r.expectWelcome("2")
		if op, msg := r.frame(); op != ws.OpText || msg != `{"type":"pong"}` {
			t.Fatalf("after the welcome: %v %s, want the pong", op, msg)
		}
	})
}

// TestUpgradeLargeHeader: an upgrade whose header is larger than the
// demux reads (many cookies) is served by net/http as before; one larger
// than net/http takes is refused with 431.
func TestUpgradeLargeHeader(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	r := h.rawDial(t)
	r.write(upgradeRequest(h.token("3"), "Cookie: big="+strings.Repeat("c", 40<<10)))
	r.expectWelcome("3")

	r = h.rawDial(t)
	r.write(upgradeRequest(h.token("4"), "Cookie: huge="+strings.Repeat("c", 2<<20)))
	if resp, _ := r.response(); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status = %d, want 431", resp.StatusCode)
	}
}

// TestUpgradeRefusedByGobwas: a GET /ws that is not a valid upgrade gets
// the WebSocket library's answer.
func TestUpgradeRefusedByGobwas(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) { c.AllowedOrigins = []string{"https://app.example.com"} }})
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{"no key", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", 400},
		{"old version", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426},
		{"no upgrade", "GET /ws?token=x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"no upgrade from a refused origin", "GET /ws?token=x HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example.net\r\n\r\n", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.rawDial(t)
			r.write([]byte(tt.request))
			if resp, body := r.response(); resp.StatusCode != tt.status {
				t.Fatalf("status = %d %s, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
}

// TestUpgradeClientLeftWhileQueued: a client that closes its connection
// while its handshake waits for admission costs nothing more: its token is
// never spent (it opens a socket afterwards) and the queue empties.
func TestUpgradeClientLeftWhileQueued(t *testing.T) {
	testenv.NoLeaks(t)
	hold := newHoldBroker("held")
	h := start(t, harnessOpts{broker: hold, gw: func(c *gateway.Config) { c.HandshakeConcurrency = 1 }})
	defer hold.Release()

	first, err := h.dial(h.token("held")) // takes the one slot until released
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := h.metric("herald_handshakes_in_flight"); n != 1 {
			return errors.New("the held handshake is not at work yet")
		}
		return nil
	})
	tok := h.token("leaver")
	r := h.rawDial(t)
	r.write(upgradeRequest(tok))
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := h.metric("herald_handshakes_queued"); n != 1 {
			return errors.New("the second handshake is not queued yet")
		}
		return nil
	})
	r.c.Close()
	hold.Release()
	if msg, err := first.ReadText(10 * time.Second); err != nil || !strings.Contains(msg, `"welcome"`) {
		t.Fatalf("held socket: %q, %v; want its welcome", msg, err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if q, f := h.metric("herald_handshakes_queued"), h.metric("herald_handshakes_in_flight"); q != 0 || f != 0 {
			return errors.New("the queue has not emptied")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	again, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if msg, err := again.ReadText(10 * time.Second); err != nil || !strings.Contains(msg, `"welcome"`) {
		t.Fatalf("the token of the client that left: %q, %v; want a welcome (never spent)", msg, err)
	}
	if n := h.metric("herald_connects_total"); n != 2 {
		t.Fatalf("connects = %v, want 2", n)
	}
}

// TestShutdownWithRawUpgradeQueued: an upgrade waiting for admission,
// holding no goroutine, when Shutdown begins is upgraded and closed with
// 1012; Shutdown returns once it is gone.
func TestShutdownWithRawUpgradeQueued(t *testing.T) {
	testenv.NoLeaks(t)
	testenv.NoFDLeaks(t)
	hold := newHoldBroker("held")
	h := start(t, harnessOpts{broker: hold, gw: func(c *gateway.Config) {
		c.HandshakeConcurrency = 1
		c.DrainWindow = 10 * time.Millisecond
	}})
	defer hold.Release()

	first, err := h.dial(h.token("held")) // takes the one slot until the drain
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := h.metric("herald_handshakes_in_flight"); n != 1 {
			return errors.New("the held handshake is not at work yet")
		}
		return nil
	})
	r := h.rawDial(t)
	r.write(upgradeRequest(h.token("queued")))
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := h.metric("herald_handshakes_queued"); n != 1 {
			return errors.New("the second handshake is not queued yet")
		}
		return nil
	})

	done := make(chan struct{})
	go func() {
		defer close(done)
		h.shutdown(20 * time.Second)
	}()
	go func() { _, _ = first.ExpectClose(10 * time.Second) }()
	if resp, body := r.response(); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("queued upgrade: %d %s, want 101 then 1012", resp.StatusCode, body)
	}
	op, payload := r.frame()
	if op != ws.OpClose {
		t.Fatalf("queued upgrade: frame %v %q, want a close frame", op, payload)
	}
	if code, _ := ws.ParseCloseFrameData([]byte(payload)); code != 1012 {
		t.Fatalf("queued upgrade closed with %d, want 1012", code)
	}
	r.write(ws.MustCompileFrame(ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1012, "")))))
	<-done
	if n := h.srv.Sockets(); n != 0 {
		t.Fatalf("sockets after Shutdown = %d, want 0", n)
	}
}
