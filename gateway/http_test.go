package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestTokenEndpoint(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.AllowedOrigins = []string{"https://app.example.com"}
	}})
	good := h.session("42")
	expired := expiredSession(t)
	otherKey, _ := auth.SignDevSession([]byte("another-secret-of-more-than-32-bytes!!"), "HS256", "42", time.Hour)
	wsToken := h.token("42")

	tests := []struct {
		name       string
		path       string
		hdr        map[string]string
		wantStatus int
		wantError  string // JSON error code; empty for a token
	}{
		{"cookie", "/api/ws/token", map[string]string{"Cookie": "access_token=" + good}, 200, ""},
		{"bearer", "/api/ws/token", map[string]string{"Authorization": "Bearer " + good}, 200, ""},
		{"alias", "/api/create-token", map[string]string{"Cookie": "access_token=" + good}, 200, ""},
		{"allowed cross origin", "/api/ws/token", map[string]string{"Cookie": "access_token=" + good, "Origin": "https://app.example.com"}, 200, ""},
		{"same origin", "/api/ws/token", map[string]string{"Cookie": "access_token=" + good, "Origin": "http://" + strings.TrimPrefix(h.base, "http://")}, 200, ""},
		{"no session", "/api/ws/token", nil, 401, "missing_session"},
		{"cookie of another name", "/api/ws/token", map[string]string{"Cookie": "session=" + good}, 401, "missing_session"},
		{"garbage", "/api/ws/token", map[string]string{"Cookie": "access_token=not.a.jwt"}, 401, "invalid_session"},
		{"wrong key", "/api/ws/token", map[string]string{"Authorization": "Bearer " + otherKey}, 401, "invalid_session"},
		{"expired", "/api/ws/token", map[string]string{"Cookie": "access_token=" + expired}, 401, "expired_session"},
		{"ws token as session", "/api/ws/token", map[string]string{"Authorization": "Bearer " + wsToken}, 401, "invalid_session"},
		{"basic auth", "/api/ws/token", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401, "missing_session"},
		{"origin not allowed", "/api/ws/token", map[string]string{"Cookie": "access_token=" + good, "Origin": "https://evil.example.net"}, 403, "origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(tt.path, tt.hdr)
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d (%v), want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if tt.wantError != "" {
				if body["error"] != tt.wantError {
					t.Errorf("error = %v, want %s", body["error"], tt.wantError)
				}
				return
			}
			if tok, _ := body["token"].(string); tok == "" {
				t.Errorf("no token in %v", body)
			}
			if body["expires_in"] != float64(30) {
				t.Errorf("expires_in = %v, want 30", body["expires_in"])
			}
		})
	}
}

func TestCORS(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.AllowedOrigins = []string{"https://app.example.com", "https://*.games.example.com"}
	}})
	tests := []struct {
		name       string
		method     string
		origin     string
		wantStatus int
		wantACAO   string
	}{
		{"preflight allowed", http.MethodOptions, "https://app.example.com", 204, "https://app.example.com"},
		{"preflight wildcard subdomain", http.MethodOptions, "https://eu.games.example.com", 204, "https://eu.games.example.com"},
		{"preflight refused", http.MethodOptions, "https://evil.example.net", 403, ""},
		{"preflight wrong scheme", http.MethodOptions, "http://app.example.com", 403, ""},
		{"post allowed, no session", http.MethodPost, "https://app.example.com", 401, "https://app.example.com"},
		{"post without origin", http.MethodPost, "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, h.base+"/api/ws/token", nil)
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantACAO)
			}
			if tt.wantACAO != "" && resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("Access-Control-Allow-Credentials = %q, want true", resp.Header.Get("Access-Control-Allow-Credentials"))
			}
			if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q, want Origin", resp.Header.Values("Vary"))
			}
		})
	}
}

func TestTokenRateLimit(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.TokenRate = 0.5
		c.TokenBurst = 3
	}})
	cookie := map[string]string{"Cookie": "access_token=" + h.session("7")}
	for i := range 3 {
		resp := h.post("/api/ws/token", cookie)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d, want 200 within the burst", i, resp.StatusCode)
		}
	}
	resp := h.post("/api/ws/token", cookie)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 429 || !strings.Contains(string(b), `"rate_limited"`) {
		t.Fatalf("over the burst: %d %s, want 429 rate_limited", resp.StatusCode, b)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2 (one token per 2 s)", ra)
	}
	// Another user has a bucket of their own.
	other := h.post("/api/ws/token", map[string]string{"Cookie": "access_token=" + h.session("8")})
	other.Body.Close()
	if other.StatusCode != 200 {
		t.Fatalf("another user: status %d, want 200", other.StatusCode)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{})
	get := func(path string) (int, string) {
		resp, err := http.Get(h.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s, want 200", code, body)
	}
	h.connect("1")
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "herald_sockets 1") || !strings.Contains(body, `herald_disconnects_total{code="4009"} 0`) {
		t.Errorf("/metrics = %d, want herald_sockets 1 and a zero slow-consumer series:\n%s", code, body)
	}
	if code, _ := get("/ws"); code != 400 {
		t.Errorf("GET /ws without upgrade = %d, want 400", code)
	}
}
