package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/gateway/admit"
	"github.com/herald-gw/herald/gateway/wscore"
	"github.com/herald-gw/herald/replay"
)

// handleWS upgrades GET /ws?token=… to a WebSocket. Problems a browser must
// be able to read (token expired, invalid or reused; try again later; too
// many sockets) are reported after the upgrade as close codes. The handler's
// goroutine ends with the handshake: the socket then belongs to the core.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Counted before the draining check: Shutdown sets draining first and
	// then waits for live to reach 0, so no request slips between them.
	s.live.Add(1)
	owned := false // the socket core reports this request's end
	defer func() {
		if !owned {
			s.live.Add(-1)
		}
	}()
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	if !s.allowOrigin(w, r) {
		return
	}
	ip := admit.ClientIP(r, s.cfg.TrustedProxies)
	claims, d := s.checkToken(r, ip, r.URL.Query().Get("token"))
	var tk *ticket
	if d == nil {
		var gone bool
		if tk, d, gone = s.enter(r, ip, claims); gone {
			return
		}
	}
	worked := false
	defer func() { tk.release(worked) }()
	up := ws.HTTPUpgrader{Timeout: s.cfg.HandshakeTimeout}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close() // gobwas has answered 400 (or 405/426)
		}
		return
	}
	c, err := s.newConn(nc, r)
	if err != nil {
		s.log.Warn("cannot take over an upgraded socket", zap.Error(err))
		nc.Close()
		return
	}
	owned = true
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandshakeTimeout)
	defer cancel()
	var early []byte
	if d == nil {
		d = s.admitSocket(ctx, c, r, claims)
		worked = true
	}
	if d != nil {
		c.ws.Shed(d, s.cfg.CloseTimeout)
	} else {
		if n := rw.Reader.Buffered(); n > 0 {
			// A client that wrote frames before reading the 101: they
			// are parsed before the poller takes over.
			early, _ = rw.Reader.Peek(n)
		}
		c.welcomed.Store(true) // before Start: its disconnect may be logged at once
	}
	if state, _ := c.ws.Start(early); state != wscore.Active {
		// Refused, or closed while its handshake ran (a disconnect
		// command, a drain): the client gets the close frame and never
		// the welcome.
		c.welcomed.Store(false)
		return
	}
	s.metrics.connects.Inc()
	s.handshakes.Add(1)
	s.metrics.handshake.Observe(time.Since(start).Seconds())
	s.log.Info("connect",
		zap.String("user", c.user),
		zap.String("socket_id", c.id),
		zap.String("ip", c.remoteIP),
		zap.String("user_agent", c.userAgent),
	)
}

// admitSocket checks the token, consumes it, registers the socket and waits
// for its user's subscription (and its socket's, with a broker that
// subscribes sockets one by one). It returns why the socket is refused, or
// nil with the welcome frame queued.
func (s *Server) admitSocket(ctx context.Context, c *Conn, r *http.Request, claims auth.WSClaims) *Disconnect {
	// The store's clock, not this replica's, decides whether the token is
	// still alive: a replica whose clock lags cannot revive a token whose
	// record has expired. A store that started after the token was minted
	// (Redis restarted without its data) refuses it too.
	first, err := s.cfg.Replay.Consume(ctx, claims.JTI, claims.MintedBy, claims.ExpiresAt.Add(s.cfg.Auth.ClockSkew()))
	if errors.Is(err, replay.ErrExpired) {
		s.authFailed(r, DisconnectTokenExpired.Reason, zap.String("user", claims.UserID), zap.Error(err))
		return DisconnectTokenExpired
	}
	if err != nil {
		s.authFailed(r, "replay_unavailable", zap.String("user", claims.UserID), zap.Error(err))
		return DisconnectTryAgainLater
	}
	if !first {
		s.authFailed(r, "token_reused", zap.String("user", claims.UserID))
		return DisconnectTokenReused
	}

	c.user = claims.UserID
	c.id = s.newSocketID()
	// The welcome is queued first (the core holds it until Start), so that
	// messages delivered once the socket is registered come after it. With
	// an inbox it waits for the inbox read, and a gate holds those messages
	// meanwhile (inbox.go). A cluster-wide cap refuses before any of it.
	if d := s.presenceAdmit(ctx, c); d != nil {
		return d
	}
	gate := s.beginInbox(c)
	if gate == nil {
		c.enqueue(s.welcomeFrame(c, ""))
	}
	userReady, socketReady, err := s.reg.add(c)
	if err != nil {
		s.presenceLeft(c)
		s.endInbox(c, gate, false, nil)
		s.log.Info("socket refused: per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.MaxSocketsPerUser))
		return DisconnectTooMany
	}
	c.registered.Store(true)
	if c.ws.State() == wscore.Closed { // dropped meanwhile: its OnClose may have missed the registration
		s.reg.remove(c)
		s.presenceLeft(c) // at most once per socket, as in connEnded
	}
	if s.draining.Load() { // registered after the drain listed the sockets
		s.endInbox(c, gate, false, nil)
		return DisconnectServiceRestart
	}
	for _, ready := range [...]<-chan struct{}{userReady, socketReady} {
		if ready == nil { // no per-socket subscription
			continue
		}
		select {
		case <-ready:
		case <-s.drainCh:
			s.endInbox(c, gate, false, nil)
			return DisconnectServiceRestart
		case <-ctx.Done():
			s.endInbox(c, gate, false, nil)
			s.log.Warn("socket refused: broker subscription not confirmed in time",
				zap.String("user", c.user), zap.String("socket_id", c.id), zap.Duration("timeout", s.cfg.HandshakeTimeout))
			return DisconnectTryAgainLater
		}
	}
	return s.openInbox(ctx, c, gate, r.URL.Query())
}

// checkToken refuses a handshake from a blocked address or with a token
// that does not verify. It costs an HMAC and nothing in Redis: the token
// is consumed only once the handshake is admitted.
func (s *Server) checkToken(r *http.Request, ip, token string) (auth.WSClaims, *Disconnect) {
	if blocked, _ := s.blocker.Blocked(ip, time.Now()); blocked {
		s.metrics.authFailures.WithLabelValues("ip_blocked").Inc()
		return auth.WSClaims{}, DisconnectRateLimited
	}
	claims, err := s.cfg.Auth.VerifyWSToken(token)
	if err != nil {
		d := DisconnectTokenInvalid
		if errors.Is(err, auth.ErrTokenExpired) {
			d = DisconnectTokenExpired
		}
		s.authFailed(r, d.Reason, zap.Error(err))
		return auth.WSClaims{}, d
	}
	return claims, nil
}

// enter waits for the handshake's admission (admission.go), before its
// upgrade. It returns the slot, or why the handshake is refused, or gone
// when the client left while it waited.
func (s *Server) enter(r *http.Request, ip string, claims auth.WSClaims) (tk *ticket, d *Disconnect, gone bool) {
	tk, err := s.admission.wait(ip, claims.UserID, claims.JTI, s.drainCh, r.Context().Done())
	switch {
	case err == nil:
		return tk, nil, false
	case errors.Is(err, errTokenInFlight):
		s.authFailed(r, "token_reused", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectTokenReused, false
	case errors.Is(err, errAdmissionDrain):
		return nil, DisconnectServiceRestart, false
	case errors.Is(err, errAdmissionGone):
		return nil, nil, true
	case errors.Is(err, errAdmissionWait): // the replica is slow: not the address's fault
		s.authFailed(r, "queue_timeout", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectRateLimited, false
	default: // the queue is full, and this address holds the most of it
		s.authFailed(r, "rate_limited", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectRateLimited, false
	}
}

// welcomeFrame is the first frame; inboxID, when set, is the inbox head.
func (s *Server) welcomeFrame(c *Conn, inboxID string) wscore.Frame {
	b, _ := json.Marshal(struct {
		Type       string `json:"type"`
		SocketID   string `json:"socket_id"`
		UserID     string `json:"user_id"`
		HeartbeatS int    `json:"heartbeat_s"`
		InboxID    string `json:"inbox_id,omitempty"`
	}{"welcome", c.id, c.user, max(1, int(math.Ceil(s.cfg.PingInterval.Seconds()))), inboxID})
	return wscore.TextFrame(b)
}

// newConn wraps an upgraded connection. The socket is in its handshake:
// the core neither reads nor writes it until Start.
func (s *Server) newConn(nc net.Conn, r *http.Request) (*Conn, error) {
	c := &Conn{
		srv:         s,
		remoteIP:    admit.ClientIP(r, s.cfg.TrustedProxies),
		userAgent:   truncate(r.UserAgent(), 256),
		connectedAt: time.Now(),
	}
	wc, err := s.core.NewConn(nc, (*connEvents)(c))
	if err != nil {
		return nil, err
	}
	c.ws = wc
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
