package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/internal/testenv"
)

// fleet is a few herald replicas on one Redis setup, and the test's
// sockets to them.
type fleet struct {
	t       testing.TB
	session []byte
	heralds []*testenv.Herald
	client  *http.Client
}

// startFleet starts n herald processes with env (the Redis settings) added
// to the common settings.
func startFleet(t *testing.T, n int, env ...string) *fleet {
	return startFleetOf(t, heraldBin, n, env...)
}

// startFleetOf is startFleet with the herald binary bin.
func startFleetOf(t *testing.T, bin string, n int, env ...string) *fleet {
	f := &fleet{
		t:       t,
		session: []byte(randHex(t, 32)),
		client:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}},
	}
	t.Cleanup(f.client.CloseIdleConnections)
	wsSecret := randHex(t, 32)
	for i := range n {
		addr := testenv.FreeAddr(t)
		e := append([]string{
			"HERALD_ADDR=" + addr,
			"HERALD_WS_TOKEN_SECRET=" + wsSecret,
			"HERALD_SESSION_SECRET=" + string(f.session),
			"HERALD_NODE_ID=h" + fmt.Sprint(i+1),
			"HERALD_TOKEN_RATE=100",
			"HERALD_TOKEN_BURST=200",
			"HERALD_HANDSHAKE_TIMEOUT=5s",
			"HERALD_DRAIN_WINDOW=100ms",
		}, env...)
		f.heralds = append(f.heralds, testenv.StartHerald(t, bin, addr, e))
	}
	return f
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// requireJSONLogs fails the test for every line a replica printed that is
// not a JSON object: the README promises JSON on stderr, and a log shipper
// drops or mangles anything else (go-redis' own lines included).
func (f *fleet) requireJSONLogs() {
	f.t.Helper()
	for i, h := range f.heralds {
		lines := strings.Split(strings.TrimRight(h.Logs(), "\n"), "\n")
		bad := 0
		for _, line := range lines {
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				bad++
				if bad <= 5 {
					f.t.Errorf("replica %d printed a line that is not a JSON object: %q", i+1, line)
				}
			}
		}
		if bad > 0 {
			f.t.Errorf("replica %d: %d of %d lines are not JSON", i+1, bad, len(lines))
		}
	}
}

// waitMetricAtLeast waits until series (a name with its labels, as
// /metrics prints it) is at least min on every replica.
func (f *fleet) waitMetricAtLeast(series string, min float64) {
	f.t.Helper()
	testenv.Eventually(f.t, 10*time.Second, func() error {
		for i, h := range f.heralds {
			v, err := testenv.ScrapeMetric("http://"+h.Addr+"/metrics", series)
			if err != nil {
				return err
			}
			if v < min {
				return fmt.Errorf("replica %d: %s = %v, want at least %v", i+1, series, v, min)
			}
		}
		return nil
	})
}

// waitReady waits until every replica answers /readyz with 200.
func (f *fleet) waitReady(within time.Duration) {
	f.t.Helper()
	testenv.Eventually(f.t, within, func() error {
		for _, h := range f.heralds {
			resp, err := f.client.Get("http://" + h.Addr + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s /readyz: %s", h.Addr, resp.Status)
			}
		}
		return nil
	})
}

// token fetches a WS token for user from replica i.
func (f *fleet) token(i int, user string) string {
	f.t.Helper()
	jwt, err := auth.SignDevSession(f.session, "HS256", user, 10*time.Minute)
	if err != nil {
		f.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.heralds[i].Addr+"/api/ws/token", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := f.client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tok struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &tok) != nil || tok.Token == "" {
		f.t.Fatalf("token: %s %s", resp.Status, body)
	}
	return tok.Token
}

// dial opens a socket for user on replica i and returns its first text
// message (the welcome frame, or an error with the close frame).
func (f *fleet) dial(i int, user string) (*testenv.WSClient, string, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := testenv.DialWS(ctx, "ws://"+f.heralds[i].Addr+"/ws?token="+url.QueryEscape(f.token(i, user)), nil)
	if err != nil {
		return nil, "", err
	}
	msg, err := ws.ReadText(10 * time.Second)
	if err != nil {
		ws.Close()
		return nil, "", err
	}
	return ws, msg, nil
}

// connect opens a welcomed socket for user on replica i; a goroutine
// records everything it receives until the test ends.
func (f *fleet) connect(i int, user string) *sock {
	f.t.Helper()
	ws, welcome, err := f.dial(i, user)
	if err != nil || !strings.Contains(welcome, `"type":"welcome"`) {
		f.t.Fatalf("socket for %s on replica %d: %q %v", user, i, welcome, err)
	}
	var w struct {
		SocketID string `json:"socket_id"`
	}
	_ = json.Unmarshal([]byte(welcome), &w)
	s := &sock{user: user, id: w.SocketID, replica: i, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			msg, err := ws.ReadText(time.Minute)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, msg)
			s.mu.Unlock()
		}
	}()
	f.t.Cleanup(func() {
		ws.Close()
		<-s.done
	})
	return s
}

// sock is a welcomed test socket whose messages are recorded.
type sock struct {
	user, id string
	replica  int
	done     chan struct{}
	mu       sync.Mutex
	msgs     []string // guarded by mu
}

// index returns the position of the first message equal to msg at or
// after from, or -1.
func (s *sock) index(msg string, from int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < len(s.msgs); i++ {
		if s.msgs[i] == msg {
			return i
		}
	}
	return -1
}

// count returns the number of messages received.
func (s *sock) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// after returns the messages received from position i on.
func (s *sock) after(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.msgs) {
		return nil
	}
	return append([]string(nil), s.msgs[i:]...)
}

// waitAll fails the test unless every socket received msg within d.
func waitAll(t *testing.T, d time.Duration, socks []*sock, msg string) {
	t.Helper()
	testenv.Eventually(t, d, func() error {
		for _, s := range socks {
			if s.index(msg, 0) < 0 {
				return fmt.Errorf("socket %s of %s (replica %d) did not receive %q", s.id, s.user, s.replica, msg)
			}
		}
		return nil
	})
}

const resyncMsg = `{"type":"resync"}`
