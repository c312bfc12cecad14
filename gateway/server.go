package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway/admit"
	"github.com/herald-gw/herald/gateway/membership"
	"github.com/herald-gw/herald/gateway/wscore"
)

// Server is one herald replica: its HTTP endpoints, its sockets and their
// fan-out. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg       Config
	log       *zap.Logger
	broker    fanout.Broker
	origins   *admit.Origins
	metrics   *metrics
	inbox     *inboxState // the inbox catch-up's metrics (inbox.go)
	reg       *registry
	core      *wscore.Core
	tokens    *admit.UserLimiter
	admission *admission             // the gate in front of the handshakes' work (admission.go)
	members   *membership.Membership // the shared membership; nil without Presence (presence.go)
	blocker   *admit.AuthBlocker     // failed-authentication blocking; nil when off

	maxRelay int // largest payload relayed to sockets: MaxQueueBytes/2

	http *http.Server
	mux  *http.ServeMux

	// live counts /ws requests from the moment they are accepted (before
	// the draining check) until their socket is closed, or until the
	// request ends without one. Shutdown waits for it to reach 0.
	live       atomic.Int64
	handshakes atomic.Uint64 // sockets welcomed, for the release loop (memory.go)
	draining   atomic.Bool
	drainCh    chan struct{} // closed when Shutdown begins: handshakes waiting for a subscription give up
	drainSlots chan struct{} // sockets in their drain close handshake; made by New, read-only after
	stop       chan struct{} // closed when the core stops
	quit       chan struct{} // closed when the listener stops: the accept loop returns
	quitOnce   sync.Once
	reading    readers        // connections in their first read (listen.go)
	workers    *workers       // the admitted raw handshakes' goroutines (workers.go)
	loops      sync.WaitGroup // the sweep loop
	closeOnce  sync.Once
}

// New builds a Server from cfg, starts its socket core (pollers, write
// workers, heartbeat) and subscribes it to the broker.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	origins, err := admit.NewOrigins(cfg.AllowedOrigins)
	if err := errors.Join(cfg.validate(), err); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = publish.NewNodeID()
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		broker:  cfg.Broker,
		origins: origins,
		reg:     newRegistry(cfg.Broker, cfg.MaxSocketsPerUser),
		tokens:  admit.NewUserLimiter(cfg.TokenRate, cfg.TokenBurst),
		drainCh: make(chan struct{}),
		// cfg.DrainConcurrency is filled in by now: made once, so that
		// Shutdown writes no field another goroutine reads.
		drainSlots: make(chan struct{}, cfg.DrainConcurrency),
		stop:       make(chan struct{}),
		quit:       make(chan struct{}),

		maxRelay: cfg.MaxQueueBytes / 2,
	}
	if s.admission, err = newAdmission(admissionConfig{
		rate: cfg.HandshakeRate, burst: cfg.HandshakeBurst,
		maxLimit: cfg.HandshakeConcurrency, queue: cfg.HandshakeQueue,
		wait: cfg.HandshakeQueueWait, turn: cfg.HandshakeTimeout / 2,
	}, cfg.Registerer); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if s.metrics, err = newMetrics(cfg.Registerer, s); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if s.blocker, err = admit.NewAuthBlocker(cfg.AuthFailLimit, cfg.AuthFailWindow, cfg.AuthBlockDuration,
		cfg.AuthBlockIPv6Prefix, cfg.TrustedProxies, s.log, cfg.Registerer); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if s.inbox, err = newInboxState(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if s.members, err = s.newMembership(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.workers = newWorkers(s.stop)
	s.core, err = wscore.New(cfg.coreConfig())
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.sweepTokens()
	}()
	if !cfg.KeepMemory {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			s.releaseLoop(freeOSMemory)
		}()
	}
	if err := cfg.Broker.Start(&delivery{s: s}); err != nil {
		s.closeCore()
		return nil, fmt.Errorf("gateway: start broker: %w", err)
	}
	s.startMembership()
	s.mux = s.routes()
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	return s, nil
}

// Handler returns the Server's HTTP routes, for mounting extra ones (such as
// the dev login) around them.
func (s *Server) Handler() http.Handler { return s.mux }

// NodeID is the replica id carried in its socket ids.
func (s *Server) NodeID() string { return s.cfg.NodeID }

// Serve accepts connections on ln until Shutdown. h, when not nil, replaces
// Handler() (it should wrap it). It returns nil after a Shutdown.
//
// With Handler() (h nil or Handler() itself), WebSocket upgrades of /ws are
// served without net/http (listen.go, rawws.go) and the other requests by
// net/http on the same listener. A wrapping h sees every request, /ws
// included, through net/http.
func (s *Server) Serve(ln net.Listener, h http.Handler) error {
	own := h == nil || h == http.Handler(s.mux)
	if h != nil {
		s.http.Handler = h
	}
	bl := &backoffListener{Listener: ln, log: s.log, metrics: s.metrics, stop: s.quit}
	if own {
		return s.serveDemux(bl)
	}
	err := s.http.Serve(bl)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// stopAccept stops accepting connections and ends the first reads in
// progress.
func (s *Server) stopAccept() {
	s.quitOnce.Do(func() {
		close(s.quit)
		s.reading.close()
	})
}

// closeCore stops the socket core, the sweep loop and the release loop. Sockets must be
// gone already.
func (s *Server) closeCore() {
	s.closeOnce.Do(func() {
		s.stopAccept()
		close(s.stop)
		s.admission.stop()
		s.core.Close()
		s.loops.Wait()
	})
}

// sweepTokens forgets idle token rate-limit buckets once a minute.
func (s *Server) sweepTokens() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.tokens.Sweep(now)
		}
	}
}

// newSocketID returns "<node>.<16 hex digits>".
func (s *Server) newSocketID() string {
	return s.cfg.NodeID + "." + randomHex(8)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// connEnded is called once per socket, by the core, when it is closed: it
// undoes what the socket's state says (registry, presence, drain slot).
func (s *Server) connEnded(c *Conn, end *Disconnect) {
	was, _ := c.to(evEnd)
	if was.registered() {
		s.reg.remove(c)
	}
	if was.counted() {
		s.queueLeft(c)
	}
	if was.drainSlot() {
		<-s.drainSlots
	}
	s.metrics.disconnects.WithLabelValues(codeLabel(end)).Inc()
	if was.phase() == connWelcomed {
		s.log.Info("disconnect",
			zap.String("user", c.user),
			zap.String("socket_id", c.id),
			zap.Duration("duration", time.Since(c.connectedAt)),
			zap.Int("code", int(end.Code)),
			zap.String("reason", end.Reason),
		)
	}
	s.live.Add(-1)
}
