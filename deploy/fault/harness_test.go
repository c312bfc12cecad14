package fault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/internal/testenv"
)

const (
	sessionSecret = "fault-suite-session-secret-0123456789abcdef"
	wsSecret      = "fault-suite-ws-token-secret-0123456789abcdef"
)

// httpClient never reuses a connection across tests' servers for long and
// has no proxy.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}

// startNode runs one herald replica on a free loopback port. rd may be nil
// (embedded mode). extra are more HERALD_* variables, which win over the
// defaults here.
func startNode(t testing.TB, rd *testenv.Redis, node string, extra ...string) *testenv.Herald {
	t.Helper()
	addr := testenv.FreeAddr(t)
	return testenv.StartHerald(t, heraldBin, addr, nodeEnv(rd, addr, node, extra...))
}

func nodeEnv(rd *testenv.Redis, addr, node string, extra ...string) []string {
	env := []string{
		"HERALD_ADDR=" + addr,
		"HERALD_SESSION_SECRET=" + sessionSecret,
		"HERALD_WS_TOKEN_SECRET=" + wsSecret,
		"HERALD_NODE_ID=" + node,
		"HERALD_TOKEN_RATE=1000",
		"HERALD_TOKEN_BURST=1000",
		"HERALD_HANDSHAKE_TIMEOUT=2s",
		"HERALD_SHUTDOWN_TIMEOUT=3s",
		"HERALD_DRAIN_WINDOW=100ms",
		"HERALD_AUTH_FAIL_LIMIT=0", // replays are part of the tests
		"HERALD_LOG_LEVEL=warn",
	}
	if rd != nil {
		env = append(env, "HERALD_REDIS_URL="+rd.URL())
	} else {
		env = append(env, "HERALD_STANDALONE=true")
	}
	return append(env, extra...)
}

func sessionJWT(t testing.TB, user string) string {
	jwt, err := auth.SignDevSession([]byte(sessionSecret), "HS256", user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return jwt
}

// token fetches a WS token for user at addr (a replica or nginx).
func token(t testing.TB, addr, user string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/ws/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+sessionJWT(t, user))
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token at %s: %s %s", addr, resp.Status, body)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("token at %s: %q: %v", addr, body, err)
	}
	return tok.Token, nil
}

// sock is a welcomed test socket.
type sock struct {
	*testenv.WSClient
	ID, Node, User string
}

// dialWS opens a socket at addr with tok and returns the first frame: the
// welcome as a sock, or the close frame as an error.
func dialWS(addr, tok string) (*sock, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := testenv.DialWS(ctx, "ws://"+addr+"/ws?token="+url.QueryEscape(tok), nil)
	if err != nil {
		return nil, err
	}
	msg, err := c.ReadText(5 * time.Second)
	if err != nil {
		c.Close()
		return nil, err
	}
	var w struct {
		Type, SocketID, UserID string
	}
	if err := json.Unmarshal([]byte(msg), &struct {
		Type     *string `json:"type"`
		SocketID *string `json:"socket_id"`
		UserID   *string `json:"user_id"`
	}{&w.Type, &w.SocketID, &w.UserID}); err != nil || w.Type != "welcome" {
		c.Close()
		return nil, fmt.Errorf("first frame %q, want a welcome", msg)
	}
	node, _, _ := strings.Cut(w.SocketID, ".")
	return &sock{WSClient: c, ID: w.SocketID, Node: node, User: w.UserID}, nil
}

// connect fetches a token for user at addr and opens a socket there.
func connect(t testing.TB, addr, user string) (*sock, error) {
	tok, err := token(t, addr, user)
	if err != nil {
		return nil, err
	}
	return dialWS(addr, tok)
}

func mustConnect(t testing.TB, addr, user string) *sock {
	t.Helper()
	s, err := connect(t, addr, user)
	if err != nil {
		t.Fatalf("connect %s at %s: %v", user, addr, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// closeCode is the code of a close frame error, or 0.
func closeCode(err error) int {
	if cf, ok := errors.AsType[*testenv.CloseFrame](err); ok {
		return cf.Code
	}
	return 0
}

// readUntil reads text messages until one satisfies match, answering pings;
// it returns the messages skipped on the way.
func readUntil(s *sock, within time.Duration, match func(string) bool) ([]string, error) {
	deadline := time.Now().Add(within)
	var skipped []string
	for {
		msg, err := s.ReadText(time.Until(deadline))
		if err != nil {
			return skipped, err
		}
		if match(msg) {
			return skipped, nil
		}
		skipped = append(skipped, msg)
	}
}

func is(want string) func(string) bool { return func(m string) bool { return m == want } }

// figure logs a measured figure in a fixed form that docs/RELIABILITY.md
// quotes: FIGURE <name> = <value>.
func figure(t testing.TB, name string, value any) {
	t.Helper()
	t.Logf("FIGURE %s = %v", name, value)
}

// metric reads one series of h's /metrics, failing the test if missing.
func metric(t testing.TB, h *testenv.Herald, series string) float64 {
	t.Helper()
	v, err := h.Metric(series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
