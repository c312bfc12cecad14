package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// blockHarness is a gateway behind a "proxy" at 127.0.0.1 (the test's own
// address, trusted), so that X-Forwarded-For chooses the client IP.
func blockHarness(t *testing.T, limit int, block time.Duration) *harness {
	return start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.AuthFailLimit = limit
		c.AuthFailWindow = time.Minute
		c.AuthBlockDuration = block
	}})
}

// tokenFrom asks for a WS token as ip with session (empty: a forged one).
func (h *harness) tokenFrom(ip, session string) *http.Response {
	h.t.Helper()
	if session == "" {
		session = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.forged"
	}
	hdr := map[string]string{"Cookie": "access_token=" + session}
	if ip != "" {
		hdr["X-Forwarded-For"] = ip
	}
	resp := h.post("/api/ws/token", hdr)
	resp.Body.Close()
	return resp
}

// dialFrom opens /ws as ip and returns the first frame's outcome: the text
// message, or the close frame as an error.
func (h *harness) dialFrom(ip, token string) (string, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(token), http.Header{"X-Forwarded-For": {ip}})
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	return c.ReadText(5 * time.Second)
}

func closeCode(err error) int {
	var cf *testenv.CloseFrame
	if errors.As(err, &cf) {
		return cf.Code
	}
	return 0
}

func TestAuthBlockTokenEndpoint(t *testing.T) {
	testenv.NoLeaks(t)
	const limit = 3
	h := blockHarness(t, limit, 2*time.Second)
	good := h.session("42")
	const bad, other = "203.0.113.7", "203.0.113.8"

	for i := range limit {
		if got := h.tokenFrom(bad, "").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("forged session %d: status %d, want 401", i+1, got)
		}
	}
	// Blocked now, even with a valid session.
	for i := range 3 {
		resp := h.tokenFrom(bad, good)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("blocked request %d: status %d, want 429", i+1, resp.StatusCode)
		}
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || ra < 1 || ra > 2 {
			t.Fatalf("Retry-After = %q, want 1 or 2 seconds", resp.Header.Get("Retry-After"))
		}
	}
	// Another address is not affected.
	if got := h.tokenFrom(other, good).StatusCode; got != http.StatusOK {
		t.Fatalf("other IP: status %d, want 200", got)
	}
	// The socket handshake is blocked too: 4029 after the upgrade.
	if _, err := h.dialFrom(bad, h.token("42")); closeCode(err) != 4029 {
		t.Fatalf("handshake from a blocked IP: got %v, want close 4029", err)
	}
	if got := len(h.logs.lines("auth block: client IP blocked after repeated failed authentication")); got != 1 {
		t.Errorf("block logged %d times, want once", got)
	}
	if got := h.metric("herald_auth_blocks_total"); got != 1 {
		t.Errorf("herald_auth_blocks_total = %v, want 1", got)
	}
	if got := h.metric(`herald_auth_failures_total{reason="ip_blocked"}`); got != 4 {
		t.Errorf(`ip_blocked failures = %v, want 4`, got)
	}
	// The block ends.
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := h.tokenFrom(bad, good).StatusCode; got != http.StatusOK {
			return fmt.Errorf("status %d after the block, want 200", got)
		}
		return nil
	})
}

// TestAuthBlockAcrossEndpoints: failures at the socket handshake (forged and
// reused tokens) count towards the block of the token endpoint.
func TestAuthBlockAcrossEndpoints(t *testing.T) {
	testenv.NoLeaks(t)
	h := blockHarness(t, 3, time.Minute)
	const ip = "198.51.100.9"
	if _, err := h.dialFrom(ip, "not-a-token"); closeCode(err) != 4002 {
		t.Fatalf("forged token: got %v, want 4002", err)
	}
	tok := h.token("42")
	if msg, err := h.dialFrom(ip, tok); err != nil {
		t.Fatalf("first use: got %v (%q), want the welcome", err, msg)
	}
	for range 2 {
		if _, err := h.dialFrom(ip, tok); closeCode(err) != 4003 {
			t.Fatalf("reused token: got %v, want 4003", err)
		}
	}
	if got := h.tokenFrom(ip, h.session("42")).StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("token endpoint after 3 handshake failures: status %d, want 429", got)
	}
}

// TestAuthBlockNotCounted: a trusted proxy's own address is never blocked,
// and expired or missing sessions do not count.
func TestAuthBlockNotCounted(t *testing.T) {
	testenv.NoLeaks(t)
	h := blockHarness(t, 2, time.Minute)
	for i := range 5 {
		// No X-Forwarded-For: the client IP is the trusted proxy itself.
		if got := h.tokenFrom("", "").StatusCode; got != http.StatusUnauthorized {
			t.Fatalf("proxy's own address, try %d: status %d, want 401", i+1, got)
		}
	}
	for i := range 5 {
		resp := h.post("/api/ws/token", map[string]string{"X-Forwarded-For": "192.0.2.1"})
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("missing session, try %d: status %d, want 401", i+1, resp.StatusCode)
		}
	}
	if got := h.tokenFrom("192.0.2.1", h.session("42")).StatusCode; got != http.StatusOK {
		t.Fatalf("after missing sessions: status %d, want 200", got)
	}
	if got := h.tokenFrom("", h.session("42")).StatusCode; got != http.StatusOK {
		t.Fatalf("proxy's own address: status %d, want 200", got)
	}
	if got := h.metric("herald_auth_blocks_total"); got != 0 {
		t.Errorf("herald_auth_blocks_total = %v, want 0", got)
	}
}

// TestAuthBlockOff: with no limit nothing is ever blocked.
func TestAuthBlockOff(t *testing.T) {
	testenv.NoLeaks(t)
	h := blockHarness(t, 0, time.Minute)
	for range 20 {
		h.tokenFrom("203.0.113.7", "")
	}
	if got := h.tokenFrom("203.0.113.7", h.session("42")).StatusCode; got != http.StatusOK {
		t.Fatalf("status %d, want 200", got)
	}
}

// TestAuthBlockForwardedForms: X-Forwarded-For entries with a port (as some
// cloud balancers send them) count against the address, and a chain that
// does not parse is counted against itself: never against the exempt proxy.
func TestAuthBlockForwardedForms(t *testing.T) {
	testenv.NoLeaks(t)
	const limit = 3
	h := blockHarness(t, limit, time.Minute)
	good := h.session("42")
	tests := []struct {
		name      string
		failAs    string // the X-Forwarded-For of the failing requests
		blockedAs string // an X-Forwarded-For that must be blocked after them
	}{
		{"ip:port", "198.51.100.7:5555", "198.51.100.7"},
		{"[v6]:port", "[2001:db8:5::1]:443", "2001:db8:5::2"},
		{"unparsable", "198.51.100.8:port", "198.51.100.8:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range limit {
				if got := h.tokenFrom(tt.failAs, "").StatusCode; got != http.StatusUnauthorized {
					t.Fatalf("forged session %d: status %d, want 401", i+1, got)
				}
			}
			if got := h.tokenFrom(tt.blockedAs, good).StatusCode; got != http.StatusTooManyRequests {
				t.Errorf("X-Forwarded-For %q after %d failures as %q: status %d, want 429", tt.blockedAs, limit, tt.failAs, got)
			}
		})
	}
	// The proxy's own address is still exempt, and not blocked by any of it.
	if got := h.tokenFrom("", good).StatusCode; got != http.StatusOK {
		t.Errorf("proxy's own address: status %d, want 200", got)
	}
}
