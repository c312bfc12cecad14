package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/gateway/admit"
)

// The upgrade without net/http. The demux (listen.go) hands over a GET /ws
// request read whole; gobwas/ws's Upgrader parses it and writes its
// response into memory; the origin and the token are checked; then the
// handshake (handshake.go) waits for admission holding only its connection,
// its parsed request and the 101 to send, no goroutine. Once admitted it
// runs on a worker (workers.go): it writes the 101 and goes on as every
// handshake does after its upgrade. Problems a browser must be able to
// read are close codes after the upgrade, as on the net/http path; a
// request that is not a valid upgrade gets gobwas' answer (400, 405, 426)
// before any check.

// upgradeRequest is a GET /ws upgrade as gobwas parsed it.
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

// request is the http.Request the origin and client address checks read:
// the parts of the request they use.
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
// request, or, with an error, gobwas' response to write before closing and
// what it read of the request before it stopped.
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
		return q, out.Bytes(), err
	}
	q.response = out.Bytes()
	return q, nil, nil
}

// originAllowed checks q's origin, counting and logging a refusal.
func (s *Server) originAllowed(q *upgradeRequest) bool {
	r := q.request()
	if ok, _ := s.origins.Check(r); ok {
		return true
	}
	s.authFailedAt(admit.ClientIP(r, s.cfg.TrustedProxies), "/ws", "origin_not_allowed")
	return false
}

// serveUpgrade serves a GET /ws read by the demux: head is the request,
// early what followed it. The request is counted in live already (by the
// demux, for Shutdown); the handshake's exit ends that count.
func (s *Server) serveUpgrade(nc net.Conn, head, early []byte) {
	q, refusal, err := parseUpgrade(nc, head)
	if err != nil {
		// As on the net/http path, draining and a refused origin answer
		// first (with what gobwas read of the headers before it stopped).
		switch {
		case s.draining.Load():
			refusal = rawJSONError(http.StatusServiceUnavailable, "draining", false)
		case q != nil && !s.originAllowed(q):
			refusal = rawJSONError(http.StatusForbidden, "origin_not_allowed", true)
		}
		writeAndClose(nc, refusal, s.cfg.HandshakeTimeout)
		s.live.Add(-1)
		return
	}
	r := q.request()
	query := r.URL.Query()
	h := &handshake{s: s, start: q.start, in: handshakeInput{
		token:     query.Get("token"),
		since:     query.Get("since"),
		hasSince:  query.Has("since"),
		ip:        admit.ClientIP(r, s.cfg.TrustedProxies),
		userAgent: q.userAgent,
		path:      "/ws",
	}}
	if s.draining.Load() {
		writeAndClose(nc, rawJSONError(http.StatusServiceUnavailable, "draining", false), s.cfg.HandshakeTimeout)
		h.exit()
		return
	}
	if !s.originAllowed(q) {
		writeAndClose(nc, rawJSONError(http.StatusForbidden, "origin_not_allowed", true), s.cfg.HandshakeTimeout)
		h.exit()
		return
	}
	if len(early) > 0 {
		q.early = bytes.Clone(early)
	}
	q.rawQuery, q.forwarded = "", nil // read: not kept while it waits
	if h.d = h.verify(); h.d != nil {
		s.workers.run(func() { h.upgradeRaw(q, false) })
		return
	}
	h.in.token = ""
	c := h.claims
	tk, err, queued := s.admission.queue(h.in.ip, c.UserID, c.JTI, func(tk *ticket, err error) {
		s.workers.run(func() {
			h.ticket, h.d, _ = h.admitted(tk, err)
			h.upgradeRaw(q, true)
		})
	})
	if !queued {
		h.ticket, h.d, _ = h.admitted(tk, err)
		s.workers.run(func() { h.upgradeRaw(q, false) })
	}
}

// upgradeRaw writes the 101 and runs the handshake's steps after the
// upgrade; it is the raw path's handleWS after admit. waited says it
// waited in the queue: a client that left meanwhile costs no more.
func (h *handshake) upgradeRaw(q *upgradeRequest, waited bool) {
	defer h.exit()
	nc := q.nc
	if waited && peerGone(nc) {
		nc.Close()
		return
	}
	_ = nc.SetWriteDeadline(time.Now().Add(h.s.cfg.HandshakeTimeout))
	if _, err := nc.Write(q.response); err != nil {
		nc.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.s.cfg.HandshakeTimeout)
	defer cancel()
	h.run(ctx, nc, q.early)
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
