package deploy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/testenv"
)

// fleet is a population of browser-like clients connected through nginx.
// Each client runs in its own goroutine: it fetches a WS token, opens a
// socket, reads frames, and reconnects the way the contract tells a browser
// to: after a 1012 it waits the after_ms of the reconnect frame before it,
// after a dropped connection it waits a short random backoff. Every failed
// attempt is recorded, 5xx answers separately.
type fleet struct {
	t       *testing.T
	lb      string // nginx host:port
	http    *http.Client
	clients []*client
	stop    chan struct{}
	wg      sync.WaitGroup
}

// client is one simulated browser tab. Its fields are guarded by mu.
type client struct {
	f       *fleet
	user    string
	session string // session JWT

	mu         sync.Mutex
	ws         *testenv.WSClient // nil while disconnected
	node       string            // replica of the current socket
	afterMS    int64             // after_ms of the last reconnect frame
	closedAt   time.Time         // when the last 1012 arrived
	closed1012 bool              // the socket ended with a reconnect frame and 1012
	status5xx  []string          // 5xx answers seen (token or handshake)
	failures   []string          // other failed attempts
	wokeAt     time.Time         // first attempt after the last 1012
	overshoot  []time.Duration   // per reconnect after 1012: first attempt to welcome
	fromClose  []time.Duration   // per reconnect after 1012: close to welcome, minus after_ms
	slow       []string          // the reconnects past the margin, how they went
	sheds      []shed            // every 1012 received
	seqs       map[int]bool      // broadcast sequence numbers received
	welcomes   int
}

// shed is one 1012 a client received, and when it came back.
type shed struct {
	node     string
	at       time.Time
	afterMS  int64
	welcomed time.Time // zero until reconnected
}

func newFleet(t *testing.T, c *cluster, n int) *fleet {
	f := &fleet{
		t:    t,
		lb:   c.nginx.Addr,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}},
		stop: make(chan struct{}),
	}
	for i := range n {
		user := fmt.Sprintf("u%d", i)
		f.clients = append(f.clients, &client{f: f, user: user, session: c.sessionJWT(user), seqs: map[int]bool{}})
	}
	t.Cleanup(f.close)
	return f
}

// start runs every client; they connect at about rate per second.
func (f *fleet) start(rate int) {
	for i, cl := range f.clients {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			cl.run()
		}()
		if rate > 0 && i%rate == rate-1 {
			time.Sleep(time.Second)
		}
	}
}

// close stops every client and waits for their goroutines.
func (f *fleet) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	for _, cl := range f.clients {
		cl.mu.Lock()
		if cl.ws != nil {
			cl.ws.Close()
		}
		cl.mu.Unlock()
	}
	f.wg.Wait()
	f.http.CloseIdleConnections()
}

func (f *fleet) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until the fleet stops; it reports false once stopped.
func (f *fleet) sleep(d time.Duration) bool {
	select {
	case <-f.stop:
		return false
	case <-time.After(d):
		return true
	}
}

func (cl *client) run() {
	f := cl.f
	backoff := time.Duration(0)
	for !f.stopped() {
		if backoff > 0 && !f.sleep(backoff) {
			return
		}
		backoff = time.Duration(50+rand.IntN(200)) * time.Millisecond
		t0 := time.Now()
		cl.mu.Lock()
		if cl.closed1012 && cl.wokeAt.IsZero() {
			cl.wokeAt = t0
		}
		cl.mu.Unlock()
		ws, node, steps, err := cl.connect()
		if err != nil {
			if !f.stopped() {
				cl.fail(err)
			}
			continue
		}
		now := time.Now()
		cl.mu.Lock()
		cl.ws, cl.node = ws, node
		cl.welcomes++
		if cl.closed1012 {
			// Reconnected after a 1012. What the load balancer and the
			// replicas added to after_ms is the time from the client's
			// first attempt to its welcome, retries included. The time
			// from the close also counts the test process' own timer
			// lateness (its goroutines compete for the CPU with nginx and
			// three replicas): reported, not asserted.
			over := now.Sub(cl.wokeAt)
			cl.overshoot = append(cl.overshoot, over)
			cl.fromClose = append(cl.fromClose, now.Sub(cl.closedAt)-time.Duration(cl.afterMS)*time.Millisecond)
			if over > reconnectMargin {
				cl.slow = append(cl.slow, fmt.Sprintf("%s after the first attempt (after_ms %d, woke %s late), last attempt %s, to %s",
					over.Round(time.Millisecond), cl.afterMS, (cl.wokeAt.Sub(cl.closedAt)-time.Duration(cl.afterMS)*time.Millisecond).Round(time.Millisecond), steps, node))
			}
			cl.sheds[len(cl.sheds)-1].welcomed = now
			cl.closed1012, cl.wokeAt = false, time.Time{}
		}
		cl.mu.Unlock()
		after, ok := cl.read(ws)
		cl.mu.Lock()
		cl.ws, cl.node = nil, ""
		cl.mu.Unlock()
		ws.Close()
		if ok {
			backoff = after
		}
	}
}

// read reads ws until it ends. ok is true for a 1012 after a reconnect
// frame, with after the delay it asked for.
func (cl *client) read(w *testenv.WSClient) (after time.Duration, ok bool) {
	var afterMS int64 = -1
	for {
		msg, err := w.ReadText(10 * time.Minute)
		var cf *testenv.CloseFrame
		switch {
		case errors.As(err, &cf):
			if cf.Code != 1012 || afterMS < 0 {
				cl.fail(fmt.Errorf("close %d %s (after_ms %d)", cf.Code, cf.Reason, afterMS))
				return 0, false
			}
			cl.mu.Lock()
			cl.closed1012, cl.closedAt, cl.afterMS = true, time.Now(), afterMS
			cl.sheds = append(cl.sheds, shed{node: cl.node, at: cl.closedAt, afterMS: afterMS})
			cl.mu.Unlock()
			return time.Duration(afterMS) * time.Millisecond, true
		case err != nil:
			if !cl.f.stopped() {
				cl.fail(fmt.Errorf("connection ended: %w", err))
			}
			return 0, false
		}
		var m struct {
			Type    string `json:"type"`
			AfterMS int64  `json:"after_ms"`
			Seq     int    `json:"seq"`
		}
		if json.Unmarshal([]byte(msg), &m) != nil {
			continue
		}
		switch m.Type {
		case "reconnect":
			afterMS = m.AfterMS
		case "tick":
			cl.mu.Lock()
			cl.seqs[m.Seq] = true
			cl.mu.Unlock()
		}
	}
}

// connect fetches a token through nginx and opens a socket with it. It
// returns the socket, its replica, and how long each step took.
func (cl *client) connect() (*testenv.WSClient, string, string, error) {
	f := cl.f
	t0 := time.Now()
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.lb+"/api/ws/token", nil)
	req.Header.Set("Authorization", "Bearer "+cl.session)
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, "", "", fmt.Errorf("token: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", statusErr{"token", resp.StatusCode, string(body)}
	}
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return nil, "", "", fmt.Errorf("token: %q: %w", body, err)
	}
	t1 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := testenv.WSDialer{}.Dial(ctx, "ws://"+f.lb+"/ws?token="+url.QueryEscape(tok.Token))
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, "", "", statusErr{"handshake", int(se), ""}
		}
		return nil, "", "", fmt.Errorf("handshake: %w", err)
	}
	t2 := time.Now()
	msg, err := w.ReadText(10 * time.Second)
	var welcome struct {
		Type     string `json:"type"`
		SocketID string `json:"socket_id"`
	}
	if err != nil || json.Unmarshal([]byte(msg), &welcome) != nil || welcome.Type != "welcome" {
		w.Close()
		return nil, "", "", fmt.Errorf("welcome: %q %v", msg, err)
	}
	node, _, _ := strings.Cut(welcome.SocketID, ".")
	steps := fmt.Sprintf("token %s, upgrade %s, welcome %s", t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
	return w, node, steps, nil
}

type statusErr struct {
	what   string
	status int
	body   string
}

func (e statusErr) Error() string { return fmt.Sprintf("%s: HTTP %d %s", e.what, e.status, e.body) }

func (cl *client) fail(err error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var se statusErr
	if errors.As(err, &se) && se.status >= 500 {
		cl.status5xx = append(cl.status5xx, err.Error())
		return
	}
	cl.failures = append(cl.failures, err.Error())
}

// byNode counts the connected clients per replica.
func (f *fleet) byNode() (map[string]int, int) {
	n, total := map[string]int{}, 0
	for _, cl := range f.clients {
		cl.mu.Lock()
		if cl.ws != nil {
			n[cl.node]++
			total++
		}
		cl.mu.Unlock()
	}
	return n, total
}

// waitAllConnected polls until every client holds a socket.
func (f *fleet) waitAllConnected(within time.Duration) {
	f.t.Helper()
	testenv.Eventually(f.t, within, func() error {
		if n, total := f.byNode(); total != len(f.clients) {
			return fmt.Errorf("%d of %d clients connected: %v", total, len(f.clients), n)
		}
		return nil
	})
}

// report is what the fleet saw.
type report struct {
	status5xx []string
	failures  []string
	overshoot []time.Duration // sorted
	fromClose []time.Duration // sorted
	slow      []string
	sheds     []shed
	welcomes  int
	missed    int // broadcast ticks a client did not receive between its first and last
}

func (f *fleet) report() report {
	var r report
	for _, cl := range f.clients {
		cl.mu.Lock()
		r.status5xx = append(r.status5xx, cl.status5xx...)
		r.failures = append(r.failures, cl.failures...)
		r.overshoot = append(r.overshoot, cl.overshoot...)
		r.fromClose = append(r.fromClose, cl.fromClose...)
		r.slow = append(r.slow, cl.slow...)
		r.sheds = append(r.sheds, cl.sheds...)
		r.welcomes += cl.welcomes
		lo, hi := -1, -1
		for s := range cl.seqs {
			if lo < 0 || s < lo {
				lo = s
			}
			if s > hi {
				hi = s
			}
		}
		if lo >= 0 {
			r.missed += hi - lo + 1 - len(cl.seqs)
		}
		cl.mu.Unlock()
	}
	sort.Slice(r.overshoot, func(i, j int) bool { return r.overshoot[i] < r.overshoot[j] })
	sort.Slice(r.fromClose, func(i, j int) bool { return r.fromClose[i] < r.fromClose[j] })
	return r
}

// quantile of the sorted durations.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// ticker publishes {"type":"tick","seq":N} to broadcast every period until
// the test ends, so that the clients can count what they missed.
func (c *cluster) ticker(t *testing.T, period time.Duration) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.rdb.Publish(ctx, "broadcast", fmt.Sprintf(`{"type":"tick","seq":%d}`, seq))
			cancel()
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
}

// firstN returns at most n strings of s, for messages.
func firstN(s []string, n int) []string { return s[:min(n, len(s))] }
