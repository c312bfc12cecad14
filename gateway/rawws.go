package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/gateway/admit"
	"github.com/herald-gw/herald/gateway/wscore"
)

// The upgrade without net/http. The demux (listen.go) hands over a GET /ws
// request read whole; gobwas/ws's Upgrader parses it and writes its
// response into memory; the origin and the token are checked; then the
// handshake waits for admission holding only its connection and an
// upgradeRequest, no goroutine. Once admitted it writes the 101 and goes on
// as handleWS does after its upgrade. Problems a browser must be able to
// read are close codes after the upgrade, as with handleWS; a request that
// is not a valid upgrade gets gobwas' answer (400, 405, 426) and no token
// check.

// upgradeRequest is a GET /ws upgrade: what its handshake needs of the
// request, kept while it waits for admission.
type upgradeRequest struct {
	nc        net.Conn
	start     time.Time
	remote    string // the TCP peer, host:port
	host      string // Host
	rawQuery  string
	origin    string   // the first Origin
	userAgent string   // the first User-Agent, clipped
	forwarded []string // X-Forwarded-For lines, in order
	response  []byte   // the 101 gobwas wrote, sent once admitted
	early     []byte   // bytes sent after the request, before the 101: frames
}

// request is the http.Request the checks and the handshake read: the
// parts of the request they use.
func (q *upgradeRequest) request() *http.Request {
	h := make(http.Header, 3)
	if q.origin != "" {
		h["Origin"] = []string{q.origin}
	}
	if q.userAgent != "" {
		h["User-Agent"] = []string{q.userAgent}
	}
	if len(q.forwarded) > 0 {
		h["X-Forwarded-For"] = q.forwarded
	}
	return &http.Request{
		Method: http.MethodGet, URL: &url.URL{Path: "/ws", RawQuery: q.rawQuery},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: q.host, RemoteAddr: q.remote, RequestURI: "/ws",
	}
}

// parseUpgrade runs gobwas' Upgrader on the request head. It returns the
// request, or gobwas' error response to write before closing.
func parseUpgrade(nc net.Conn, head []byte) (*upgradeRequest, []byte, error) {
	q := &upgradeRequest{nc: nc, start: time.Now(), remote: nc.RemoteAddr().String()}
	up := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			if i := bytes.IndexByte(uri, '?'); i >= 0 {
				q.rawQuery = string(uri[i+1:])
			}
			return nil
		},
		OnHost: func(host []byte) error {
			q.host = string(host)
			return nil
		},
		OnHeader: func(k, v []byte) error {
			switch string(k) {
			case "Origin":
				if q.origin == "" {
					q.origin = string(v)
				}
			case "User-Agent":
				if q.userAgent == "" {
					q.userAgent = string(v[:min(len(v), 256)])
				}
			case "X-Forwarded-For":
				q.forwarded = append(q.forwarded, string(v))
			}
			return nil
		},
	}
	var out bytes.Buffer
	out.Grow(192)
	_, err := up.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(head), &out})
	if err != nil {
		return nil, out.Bytes(), err
	}
	q.response = out.Bytes()
	return q, nil, nil
}

// serveUpgrade serves a GET /ws read by the demux: head is the request,
// early what followed it. The request is counted in live already.
func (s *Server) serveUpgrade(nc net.Conn, head, early []byte) {
	q, refusal, err := parseUpgrade(nc, head)
	if err != nil {
		writeAndClose(nc, refusal, s.cfg.HandshakeTimeout)
		s.live.Add(-1)
		return
	}
	if len(early) > 0 {
		q.early = bytes.Clone(early)
	}
	r := q.request()
	if s.draining.Load() {
		writeAndClose(nc, rawJSONError(http.StatusServiceUnavailable, "draining", false), s.cfg.HandshakeTimeout)
		s.live.Add(-1)
		return
	}
	if ok, _ := s.origins.Check(r); !ok {
		s.authFailed(r, "origin_not_allowed")
		writeAndClose(nc, rawJSONError(http.StatusForbidden, "origin_not_allowed", true), s.cfg.HandshakeTimeout)
		s.live.Add(-1)
		return
	}
	ip := admit.ClientIP(r, s.cfg.TrustedProxies)
	claims, d := s.checkToken(r, ip, r.URL.Query().Get("token"))
	if d != nil {
		s.upgradeAdmitted(q, claims, nil, d, false)
		return
	}
	tk, err, queued := s.admission.queue(ip, claims.UserID, claims.JTI, func(tk *ticket, err error) {
		s.workers.run(func() {
			s.upgradeAdmitted(q, claims, tk, s.admissionRefused(q.request(), claims, err), true)
		})
	})
	if !queued {
		s.workers.run(func() { s.upgradeAdmitted(q, claims, tk, s.admissionRefused(r, claims, err), false) })
	}
}

// admissionRefused is the close code of a handshake that admission
// refused with err, or nil.
func (s *Server) admissionRefused(r *http.Request, claims auth.WSClaims, err error) *Disconnect {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errTokenInFlight):
		s.authFailed(r, "token_reused", zap.String("user", claims.UserID), zap.Error(err))
		return DisconnectTokenReused
	case errors.Is(err, errAdmissionDrain):
		return DisconnectServiceRestart
	case errors.Is(err, errAdmissionWait): // the replica is slow: not the address's fault
		s.authFailed(r, "queue_timeout", zap.String("user", claims.UserID), zap.Error(err))
		return DisconnectRateLimited
	default: // the queue is full, and this address holds the most of it
		s.authFailed(r, "rate_limited", zap.String("user", claims.UserID), zap.Error(err))
		return DisconnectRateLimited
	}
}

// upgradeAdmitted goes on with a handshake that admission let through (tk)
// or that is refused with d: it writes the 101, and the socket is welcomed
// or closed with d. waited says it waited in the queue: a client that left
// meanwhile costs no more.
func (s *Server) upgradeAdmitted(q *upgradeRequest, claims auth.WSClaims, tk *ticket, d *Disconnect, waited bool) {
	owned := false // the socket core reports this request's end
	defer func() {
		if !owned {
			s.live.Add(-1)
		}
	}()
	worked := false
	defer func() { tk.release(worked) }()
	nc := q.nc
	if waited && peerGone(nc) {
		nc.Close()
		return
	}
	_ = nc.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if _, err := nc.Write(q.response); err != nil {
		nc.Close()
		return
	}
	r := q.request()
	c, err := s.newConn(nc, r)
	if err != nil {
		s.log.Warn("cannot take over an upgraded socket", zap.Error(err))
		nc.Close()
		return
	}
	owned = true
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	defer cancel()
	if d == nil {
		d = s.admitSocket(ctx, c, r, claims)
		worked = true
	}
	if d != nil {
		c.ws.Shed(d, s.cfg.CloseTimeout)
	} else {
		c.welcomed.Store(true) // before Start: its disconnect may be logged at once
	}
	var early []byte
	if d == nil {
		early = q.early
	}
	if state, _ := c.ws.Start(early); state != wscore.Active {
		c.welcomed.Store(false)
		return
	}
	s.metrics.connects.Inc()
	s.handshakes.Add(1)
	s.metrics.handshake.Observe(time.Since(q.start).Seconds())
	s.log.Info("connect",
		zap.String("user", c.user),
		zap.String("socket_id", c.id),
		zap.String("ip", c.remoteIP),
		zap.String("user_agent", c.userAgent),
	)
}

// rawJSONError is the response writeError gives, as bytes, with the
// connection closed after it.
func rawJSONError(status int, code string, varyOrigin bool) []byte {
	body := `{"error":"` + code + `"}` + "\n"
	b := make([]byte, 0, 256)
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if varyOrigin {
		b = append(b, "\r\nVary: Origin"...)
	}
	b = append(b, "\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	return append(b, body...)
}

// writeAndClose writes b (bounded by within) and closes nc.
func writeAndClose(nc net.Conn, b []byte, within time.Duration) {
	_ = nc.SetWriteDeadline(time.Now().Add(within))
	_, _ = nc.Write(b)
	nc.Close()
}
