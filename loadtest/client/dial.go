package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// attemptError is why one connect attempt failed, and what a browser would
// do next.
type attemptError struct {
	reason string        // the failed_by key: token_http_401, ws_http_503, close_4003, dial_error…
	next   nextStep      // retry policy
	wait   time.Duration // for retryAfter
	err    error
}

func (e *attemptError) Error() string {
	if e.err != nil {
		return e.reason + ": " + e.err.Error()
	}
	return e.reason
}

type nextStep uint8

const (
	retryNow     nextStep = iota // fetch a new token and reconnect at once
	retryBackoff                 // reconnect after a jittered exponential backoff
	retryAfter                   // reconnect after the server's hint (Retry-After, after_ms)
	retryOnce                    // 4002: one more attempt, then stop
	stop                         // do not reconnect
)

// closeStep is what a well-written browser client does after close code.
func closeStep(code int) nextStep {
	switch code {
	case 4000, 4008, 1002, 1007, 1009:
		return stop
	case 4001, 4003:
		return retryNow
	case 4002:
		return retryOnce
	case 1012:
		return retryAfter
	default: // 4009, 4029, 1013, 1001, 1006, 1011…
		return retryBackoff
	}
}

// dialer opens sockets the way a browser does: a token POST with the
// session cookie, then the upgrade, then the welcome.
type dialer struct {
	pl      *Plan
	clients []*http.Client // one per source address (or one)
	now     func() time.Time
}

func newDialer(pl *Plan) *dialer {
	d := &dialer{pl: pl, now: time.Now}
	srcs := pl.SrcIPs
	if len(srcs) == 0 {
		srcs = []string{""}
	}
	for _, ip := range srcs {
		nd := netDialer(ip, 0)
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         nd.DialContext,
			MaxIdleConnsPerHost: max(pl.Concurrency/len(srcs), 4),
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		}
		d.clients = append(d.clients, &http.Client{Transport: tr, Timeout: 10 * time.Second})
	}
	return d
}

// handshakeWait bounds one attempt, and upgradeWait its connect and
// upgrade. In an open loop both are a browser's patience (a minute): a
// server may hold a handshake in its queue before the upgrade, and a
// storm's refusals are what is measured.
func (d *dialer) handshakeWait() time.Duration {
	if d.pl.ArrivalRate > 0 {
		return time.Minute
	}
	return 20 * time.Second
}

func (d *dialer) upgradeWait() time.Duration {
	if d.pl.ArrivalRate > 0 {
		return time.Minute
	}
	return 10 * time.Second
}

func (d *dialer) closeIdle() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}

func netDialer(srcIP string, rcvbuf int) *net.Dialer {
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if srcIP != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(srcIP)}
	}
	if srcIP == "" && rcvbuf <= 0 {
		return nd
	}
	nd.Control = func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			if srcIP != "" {
				// Let connect, not bind, pick the source port: a bind to
				// port 0 searches every port in use on that address,
				// which took 60 ms a call at 50,000 sockets and made
				// the connect rate collapse. connect picks a port free
				// for this destination, so ports are reused across
				// targets too.
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			}
			if serr == nil && rcvbuf > 0 {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}
		}); err != nil {
			return err
		}
		return serr
	}
	return nd
}

// connect runs one attempt for s: it returns the welcomed connection, the
// bytes read after the welcome frame and the welcome's inbox_id (empty
// when it has none). A socket of a replay storm asks for since: the
// inbox_id of the last frame it saw.
func (d *dialer) connect(ctx context.Context, s *Socket, mint *sessionMinter) (net.Conn, []byte, string, error) {
	target := d.pl.Targets[s.idx%len(d.pl.Targets)]
	src := 0
	if n := len(d.pl.SrcIPs); n > 0 {
		src = (s.idx / len(d.pl.Targets)) % n
	}
	token, err := d.token(ctx, d.clients[src], target, mint.mint(s.user.id))
	if err != nil {
		return nil, nil, "", err
	}
	srcIP := ""
	if len(d.pl.SrcIPs) > 0 {
		srcIP = d.pl.SrcIPs[src]
	}
	rcvbuf := 0
	if s.slowCandidate {
		rcvbuf = d.pl.SlowRcvBuf
	}
	nd := netDialer(srcIP, rcvbuf)
	wd := ws.Dialer{Timeout: d.upgradeWait(), NetDial: nd.DialContext}
	if d.pl.Origin != "" {
		wd.Header = ws.HandshakeHeaderHTTP(http.Header{"Origin": {d.pl.Origin}})
	}
	wsURL := "ws" + strings.TrimPrefix(target, "http") + "/ws?token=" + url.QueryEscape(token)
	if since, ok := s.p.since(s); ok {
		wsURL += "&since=" + url.QueryEscape(since)
	}
	conn, br, _, err := wd.Dial(ctx, wsURL)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			step := stop
			if se == 503 || se == 502 || se == 504 || se == 429 {
				step = retryBackoff
			}
			return nil, nil, "", &attemptError{reason: "ws_http_" + strconv.Itoa(int(se)), next: step}
		}
		return nil, nil, "", &attemptError{reason: "ws_dial_error", next: retryBackoff, err: err}
	}
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rest, inboxID, err := readWelcome(conn, r, br)
	if br != nil {
		ws.PutReader(br)
	}
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	return conn, rest, inboxID, nil
}

// readWelcome reads frames until the welcome (answering pings) and returns
// what was read after it and the welcome's inbox_id. A close frame instead
// is an attemptError with its code's policy.
func readWelcome(conn net.Conn, r io.Reader, br *bufio.Reader) ([]byte, string, error) {
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 512)
	for {
		h, payload, n, err := nextFrame(buf)
		if err != nil {
			return nil, "", &attemptError{reason: "server_protocol_error", next: retryBackoff, err: err}
		}
		if n > 0 {
			switch h.OpCode {
			case ws.OpText:
				if !strings.HasPrefix(string(payload), `{"type":"welcome"`) {
					return nil, "", &attemptError{reason: "no_welcome", next: retryBackoff, err: fmt.Errorf("first message %.80q", payload)}
				}
				inboxID := string(fieldInboxID(payload))
				rest := buf[n:]
				// Bytes the bufio.Reader already holds belong to the socket too.
				if br != nil {
					if k := br.Buffered(); k > 0 {
						more := make([]byte, k)
						if _, err := io.ReadFull(r, more); err == nil {
							rest = append(rest, more...)
						}
					}
				}
				return rest, inboxID, nil
			case ws.OpClose:
				code, _ := parseClose(payload)
				return nil, "", &attemptError{reason: "close_" + strconv.Itoa(code), next: closeStep(code)}
			}
			buf = buf[n:]
			continue
		}
		k, err := r.Read(tmp)
		buf = append(buf, tmp[:k]...)
		if err != nil && k == 0 {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, "", &attemptError{reason: "welcome_timeout", next: retryBackoff, err: err}
			}
			return nil, "", &attemptError{reason: "closed_before_welcome", next: retryBackoff, err: err}
		}
	}
}

type tokenResponse struct {
	Token string `json:"token"`
}

// token POSTs to /api/ws/token with the session cookie, as the page does.
func (d *dialer) token(ctx context.Context, c *http.Client, target, session string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target+"/api/ws/token", nil)
	if err != nil {
		return "", &attemptError{reason: "token_request", next: stop, err: err}
	}
	req.Header.Set("Cookie", d.pl.SessionCookie+"="+session)
	if d.pl.Origin != "" {
		req.Header.Set("Origin", d.pl.Origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", &attemptError{reason: "token_error", next: retryBackoff, err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		e := &attemptError{reason: "token_http_" + strconv.Itoa(resp.StatusCode), next: stop}
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			e.next, e.wait = retryAfter, time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
				e.wait = time.Duration(s) * time.Second
			}
		case resp.StatusCode >= 500:
			e.next = retryBackoff
		}
		return "", e
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		return "", &attemptError{reason: "token_bad_body", next: retryBackoff, err: err}
	}
	return tr.Token, nil
}
