package gateway

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/gateway/admit"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	for _, path := range []string{"/api/ws/token", "/api/create-token"} {
		mux.HandleFunc("POST "+path, s.handleToken)
		mux.HandleFunc("OPTIONS "+path, s.handlePreflight)
	}
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// handleReady answers 200 while the replica takes new sockets: its broker is
// connected and it is not draining.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	case !s.broker.Ready():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "broker_unavailable"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// allowOrigin applies the origin policy to r. For an allowed cross-origin
// request it sets the CORS headers; for a refused one it answers 403.
func (s *Server) allowOrigin(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Add("Vary", "Origin")
	ok, cors := s.origins.Check(r)
	if !ok {
		s.authFailed(r, "origin_not_allowed")
		writeError(w, http.StatusForbidden, "origin_not_allowed")
		return false
	}
	if cors {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	return true
}

func (s *Server) handlePreflight(w http.ResponseWriter, r *http.Request) {
	if !s.allowOrigin(w, r) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// handleToken exchanges a session (cookie or bearer) for a WS token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !s.allowOrigin(w, r) {
		return
	}
	if blocked, wait := s.blocker.Blocked(admit.ClientIP(r, s.cfg.TrustedProxies), time.Now()); blocked {
		s.metrics.authFailures.WithLabelValues("ip_blocked").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	user, err := s.cfg.Auth.VerifySession(r.Context(), sessionToken(r, s.cfg.SessionCookie))
	if err != nil {
		code := "invalid_session"
		switch {
		case errors.Is(err, auth.ErrMissingSession):
			code = "missing_session"
		case errors.Is(err, auth.ErrSessionExpired):
			code = "expired_session"
		}
		s.authFailed(r, code, zap.Error(err))
		writeError(w, http.StatusUnauthorized, code)
		return
	}
	if ok, wait := s.tokens.Allow(user, time.Now()); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		s.authFailed(r, "rate_limited", zap.String("user", user))
		writeError(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	if c, ok := s.cfg.Broker.(fanout.UserIDChecker); ok {
		if err := c.CheckUserID(user); err != nil {
			s.log.Info("token refused: the user id cannot be routed", zap.String("user", user), zap.Error(err))
			writeError(w, http.StatusBadRequest, "user_id_not_routable")
			return
		}
	}
	token, ttl, err := s.cfg.Auth.MintWSToken(user)
	if err != nil {
		s.log.Error("minting a WS token failed", zap.String("user", user), zap.Error(err))
		writeError(w, http.StatusInternalServerError, "internal_error")
		return
	}
	s.metrics.tokensIssued.Inc()
	writeJSON(w, http.StatusOK, struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}{token, int(ttl / time.Second)})
}

// sessionToken takes the session JWT from "Authorization: Bearer" or, failing
// that, from the session cookie.
func sessionToken(r *http.Request, cookie string) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(cookie); err == nil {
		return c.Value
	}
	return ""
}

// authFailed logs a refused request: the reason and the client's address,
// never a token, cookie or query string.
//
// Failures that admit.Counted names count towards blocking the IP.
func (s *Server) authFailed(r *http.Request, reason string, fields ...zap.Field) {
	s.authFailedAt(admit.ClientIP(r, s.cfg.TrustedProxies), r.URL.Path, reason, fields...)
}

// authFailedAt is authFailed for a request of path from the client ip.
func (s *Server) authFailedAt(ip, path, reason string, fields ...zap.Field) {
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	if admit.Counted(reason) {
		s.blocker.Failed(ip, time.Now())
	}
	s.log.Info("auth failure", append([]zap.Field{
		zap.String("reason", reason),
		zap.String("ip", ip),
		zap.String("path", path),
	}, fields...)...)
}

func writeError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
