package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/herald-gw/herald/fanout"
)

// Server is one herald replica: its HTTP endpoints, its sockets and their
// fan-out. Create it with New, run it with Serve, stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *zap.Logger
	broker  fanout.Broker
	origins *originPolicy
	metrics *metrics
	reg     *registry
	writers *writePool
	pollers []*poller
	tokens  *userLimiter
	admit   *rate.Limiter // WebSocket handshakes; nil when not capped

	http *http.Server
	mux  *http.ServeMux

	nextPoller atomic.Uint32
	live       atomic.Int64 // sockets past the upgrade, until torn down
	draining   atomic.Bool
	stop       chan struct{} // closed when the core stops
	quit       chan struct{} // closed when Shutdown begins: the accept loop stops
	quitOnce   sync.Once
	loops      sync.WaitGroup // pollers and the heartbeat loop
	closeOnce  sync.Once
}

// New builds a Server from cfg, starts its socket core (pollers, write
// workers, heartbeat) and subscribes it to the broker.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	origins, err := newOriginPolicy(cfg.AllowedOrigins)
	if err := errors.Join(cfg.validate(), err); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = fanout.NewNodeID()
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		broker:  cfg.Broker,
		origins: origins,
		reg:     newRegistry(cfg.Broker, cfg.MaxSocketsPerUser),
		tokens:  newUserLimiter(cfg.TokenRate, cfg.TokenBurst),
		stop:    make(chan struct{}),
		quit:    make(chan struct{}),
	}
	if cfg.HandshakeRate > 0 {
		s.admit = rate.NewLimiter(rate.Limit(cfg.HandshakeRate), cfg.HandshakeBurst)
	}
	s.metrics = newMetrics(cfg.Registerer, s)
	for range cfg.Pollers {
		p, err := newPoller()
		if err != nil {
			for _, p := range s.pollers {
				p.close()
			}
			return nil, fmt.Errorf("gateway: %w", err)
		}
		s.pollers = append(s.pollers, p)
	}
	s.writers = newWritePool(cfg.Writers)
	readBuf := max(16<<10, cfg.MaxMessageBytes+14)
	for _, p := range s.pollers {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			p.run(readBuf)
		}()
	}
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		s.heartbeat()
	}()
	if err := cfg.Broker.Start(&delivery{s: s}); err != nil {
		s.closeCore()
		return nil, fmt.Errorf("gateway: start broker: %w", err)
	}
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
func (s *Server) Serve(ln net.Listener, h http.Handler) error {
	if h != nil {
		s.http.Handler = h
	}
	bl := &backoffListener{Listener: ln, log: s.log, metrics: s.metrics, stop: s.quit}
	err := s.http.Serve(bl)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (s *Server) stopAccept() { s.quitOnce.Do(func() { close(s.quit) }) }

// closeCore stops the pollers, write workers and heartbeat. Sockets must be
// gone already.
func (s *Server) closeCore() {
	s.closeOnce.Do(func() {
		s.stopAccept()
		close(s.stop)
		for _, p := range s.pollers {
			p.close()
		}
		s.writers.close()
		s.loops.Wait()
	})
}

// pickPoller spreads sockets over the epoll loops.
func (s *Server) pickPoller() *poller {
	return s.pollers[int(s.nextPoller.Add(1))%len(s.pollers)]
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

// connEnded is called once per socket by teardown.
func (s *Server) connEnded(c *Conn, end *Disconnect) {
	if c.registered.Load() {
		s.reg.remove(c)
	}
	s.metrics.disconnects.WithLabelValues(codeLabel(end)).Inc()
	if c.welcomed.Load() {
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

// codeLabel is the disconnect counter's label for d.
func codeLabel(d *Disconnect) string { return strconv.Itoa(int(d.Code)) }
