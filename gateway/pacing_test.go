package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// pacedHarness is a gateway paced at rate handshakes a second (burst 1)
// behind a trusted "proxy" at 127.0.0.1, so that X-Forwarded-For chooses
// each handshake's client address.
func pacedHarness(t *testing.T, rate float64, failLimit int) *harness {
	return start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.HandshakeRate = rate
		c.HandshakeBurst = 1
		c.HandshakeTimeout = 20 * time.Second
		c.AuthFailLimit = failLimit
		c.AuthFailWindow = time.Minute
		c.AuthBlockDuration = time.Minute
	}})
}

// outcome is a handshake's first frame: the welcome (order = its rank among
// the welcomes the test counts) or the close code.
type outcome struct {
	code  int
	order int64
	err   error
}

// dialAs opens /ws as ip with token and reports its first frame on out;
// welcomes take a rank from seq. The socket is closed when the test ends.
func (h *harness) dialAs(t *testing.T, ip, token string, seq *atomic.Int64, out chan<- outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := testenv.DialWS(ctx, h.ws+"?token="+url.QueryEscape(token), http.Header{"X-Forwarded-For": {ip}})
	if err != nil {
		out <- outcome{err: err}
		return
	}
	t.Cleanup(func() { c.Close() })
	msg, err := c.ReadText(30 * time.Second)
	switch {
	case err != nil && closeCode(err) != 0:
		out <- outcome{code: closeCode(err)}
	case err != nil:
		out <- outcome{err: err}
	case !strings.Contains(msg, `"type":"welcome"`):
		out <- outcome{err: fmt.Errorf("first frame %s, want the welcome", msg)}
	default:
		out <- outcome{order: seq.Add(1)}
	}
}

// TestPacingRefusesTokenInFlight: copies of one token sent in parallel do
// not take a place in the pacing queue each: every copy but one is refused
// (4003) before it waits.
func TestPacingRefusesTokenInFlight(t *testing.T) {
	testenv.NoLeaks(t)
	h := pacedHarness(t, 0.5, 0)
	h.connect("warm") // takes the burst: the next handshake waits 2 s
	tok := h.token("42")
	const copies = 6
	var seq atomic.Int64
	out := make(chan outcome, copies)
	for range copies {
		go h.dialAs(t, "203.0.113.1", tok, &seq, out)
	}
	welcomed, reused := 0, 0
	for range copies {
		o := <-out
		switch {
		case o.err != nil:
			t.Fatal(o.err)
		case o.code == 0:
			welcomed++
		case o.code == 4003:
			reused++
		default:
			t.Errorf("a copy was closed with %d, want 4003 (token in flight)", o.code)
		}
	}
	if welcomed != 1 || reused != copies-1 {
		t.Errorf("welcomed %d, refused as reused %d; want 1 and %d", welcomed, reused, copies-1)
	}
	if n := h.metric("herald_handshakes_paced_total"); n != 1 {
		t.Errorf("herald_handshakes_paced_total = %v, want 1: only the first copy may wait", n)
	}
}

// TestPacingFairAcrossAddresses: one address's 15 handshakes in the pacing
// queue do not make a handshake from another address wait behind them all.
func TestPacingFairAcrossAddresses(t *testing.T) {
	testPacingFair(t, "203.0.113.9", "victim")
}

// TestPacingFairAcrossUsers: one user's 15 fresh tokens do not make another
// user (from the same address) wait behind them all.
func TestPacingFairAcrossUsers(t *testing.T) {
	testPacingFair(t, "203.0.113.1", "victim")
}

func testPacingFair(t *testing.T, victimIP, victim string) {
	testenv.NoLeaks(t)
	h := pacedHarness(t, 4, 0)
	h.connect("warm") // takes the burst: every later handshake is paced
	const flood = 15
	tokens := make([]string, flood)
	for i := range tokens {
		tokens[i] = h.token("mallory")
	}
	victimToken := h.token(victim)
	var seq atomic.Int64
	out := make(chan outcome, flood)
	for _, tok := range tokens {
		go h.dialAs(t, "203.0.113.1", tok, &seq, out)
	}
	// Every handshake of the flood has reached the replica: waiting for
	// its turn, at work, or welcomed (the first may not have waited, when
	// the bucket refilled before it came).
	testenv.Eventually(t, 10*time.Second, func() error {
		queued, inflight := h.metric("herald_handshakes_queued"), h.metric("herald_handshakes_in_flight")
		if n := int(queued+inflight) + int(seq.Load()); n < flood {
			return fmt.Errorf("%v queued, %v at work, %d welcomed; want %d in all", queued, inflight, seq.Load(), flood)
		}
		return nil
	})
	before := seq.Load()
	vout := make(chan outcome, 1)
	go h.dialAs(t, victimIP, victimToken, &seq, vout)
	v := <-vout
	if v.err != nil || v.code != 0 {
		t.Fatalf("victim: %v, close %d; want the welcome", v.err, v.code)
	}
	// The queue is served in turns: at most the flood's handshake being
	// admitted when the victim arrived, and the one whose turn came
	// first, go before it.
	if ahead := v.order - before - 1; ahead > 2 {
		t.Errorf("%d of the flood's handshakes were welcomed before the victim's, want at most 2", ahead)
	}
}

// TestPacingRefusalsCountAsFailures: repeated 4029s from one address count
// towards blocking it, as failed authentications do.
func TestPacingRefusalsCountAsFailures(t *testing.T) {
	testenv.NoLeaks(t)
	const limit = 3
	h := pacedHarness(t, 0.01, limit) // one handshake per 100 s
	h.connect("warm")
	const ip = "203.0.113.5"
	var seq atomic.Int64
	out := make(chan outcome, 1)
	for i := range limit {
		go h.dialAs(t, ip, h.token("u"+strconv.Itoa(i)), &seq, out)
		if o := <-out; o.code != 4029 {
			t.Fatalf("handshake %d: %+v, want close 4029", i+1, o)
		}
	}
	if got := h.tokenFrom(ip, h.session("42")).StatusCode; got != http.StatusTooManyRequests {
		t.Fatalf("token request after %d refusals for pacing: status %d, want 429 (blocked)", limit, got)
	}
}
