package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/auth"
)

// handleWS upgrades GET /ws?token=… to a WebSocket. Problems a browser must
// be able to read (token expired, invalid or reused; try again later; too
// many sockets) are reported after the upgrade as close codes. The handler's
// goroutine ends with the handshake: the socket then belongs to its poller.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	if !s.allowOrigin(w, r) {
		return
	}
	token := r.URL.Query().Get("token")
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
	s.live.Add(1)
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandshakeTimeout)
	defer cancel()
	if d := s.admitSocket(ctx, c, r, token); d != nil {
		c.fail(d)
	} else {
		if n := rw.Reader.Buffered(); n > 0 {
			// A client that wrote frames before reading the 101: parse
			// them before the poller takes over.
			early, _ := rw.Reader.Peek(n)
			c.consume(early)
		}
		s.metrics.connects.Inc()
		s.metrics.handshake.Observe(time.Since(start).Seconds())
		s.log.Info("connect",
			zap.String("user", c.user),
			zap.String("socket_id", c.id),
			zap.String("ip", c.remoteIP),
			zap.String("user_agent", c.userAgent),
		)
	}
	_ = c.activate()
}

// admitSocket checks the token, consumes it, registers the socket and waits
// for its user's subscription. It returns why the socket is refused, or nil
// with the welcome frame queued.
func (s *Server) admitSocket(ctx context.Context, c *Conn, r *http.Request, token string) *Disconnect {
	claims, err := s.cfg.Auth.VerifyWSToken(token)
	if err != nil {
		d := DisconnectTokenInvalid
		if errors.Is(err, auth.ErrTokenExpired) {
			d = DisconnectTokenExpired
		}
		s.authFailed(r, d.Reason, zap.Error(err))
		return d
	}
	if s.admit != nil && !s.admit.Allow() {
		s.authFailed(r, "rate_limited", zap.String("user", claims.UserID))
		return DisconnectRateLimited
	}
	ttl := time.Until(claims.ExpiresAt) + s.cfg.Auth.ClockSkew()
	first, err := s.cfg.Replay.Consume(ctx, claims.JTI, max(ttl, time.Millisecond))
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
	c.enqueue(s.welcomeFrame(c))
	ready, err := s.reg.add(c)
	if err != nil {
		s.log.Info("socket refused: per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.MaxSocketsPerUser))
		return DisconnectTooMany
	}
	c.registered.Store(true)
	select {
	case <-ready:
	case <-ctx.Done():
		s.log.Warn("socket refused: broker subscription not confirmed in time",
			zap.String("user", c.user), zap.Duration("timeout", s.cfg.HandshakeTimeout))
		return DisconnectTryAgainLater
	}
	c.welcomed.Store(true)
	return nil
}

func (s *Server) welcomeFrame(c *Conn) []byte {
	b, _ := json.Marshal(struct {
		Type       string `json:"type"`
		SocketID   string `json:"socket_id"`
		UserID     string `json:"user_id"`
		HeartbeatS int    `json:"heartbeat_s"`
	}{"welcome", c.id, c.user, max(1, int(math.Ceil(s.cfg.PingInterval.Seconds())))})
	return textFrame(b)
}

// newConn wraps an upgraded connection. The socket is not yet watched.
func (s *Server) newConn(nc net.Conn, r *http.Request) (*Conn, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int32
	if err := raw.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	now := time.Now()
	c := &Conn{
		srv:         s,
		poller:      s.pickPoller(),
		nc:          nc,
		raw:         raw,
		fd:          fd,
		remoteIP:    clientIP(r, s.cfg.TrustedProxies),
		userAgent:   truncate(r.UserAgent(), 256),
		connectedAt: now,
		nextPing:    now.Add(s.cfg.PingInterval).UnixNano(),
	}
	c.lastSeen.Store(now.UnixNano())
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
