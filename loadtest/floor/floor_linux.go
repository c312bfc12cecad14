//go:build linux

package floor

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/herald-gw/herald/internal/wsframe"
)

// Config is a floor server's configuration.
type Config struct {
	// Addr is the listen address; required.
	Addr string
	// Redis is the redis:// URL or host:port to subscribe to; required.
	Redis string
	// ChannelPrefix is herald's --channel-prefix; zero means none.
	ChannelPrefix string
	// SessionSecret, when set, is the HS256 secret of session JWTs: the
	// token POST checks the session's signature (one HMAC), as herald's
	// does, so that a handshake costs the floor the same socket and
	// signature work as herald, without Redis. Zero means no check.
	SessionSecret []byte
	// SessionCookie names the session cookie; zero means "access_token".
	SessionCookie string
	// UserClaim is the claim holding the user id; zero means "sub".
	UserClaim string
}

// Server is a running floor server.
type Server struct {
	cfg  Config
	ln   net.Listener
	srv  *http.Server
	sub  *subscriber // read by relay; closed by Close
	epfd int

	mu    sync.Mutex
	users map[string][]int32 // sockets by user; guarded by mu
	owner map[int32]string   // user by socket; guarded by mu
	next  uint64             // socket ids; guarded by mu

	connects, delivered, dropped prometheus.Counter
	sockets                      prometheus.GaugeFunc

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// New listens on cfg.Addr and subscribes to Redis.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Addr == "" || cfg.Redis == "" {
		return nil, errors.New("floor: an address and a Redis URL are needed")
	}
	if cfg.SessionCookie == "" {
		cfg.SessionCookie = "access_token"
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	sub, err := subscribe(cfg.Redis, cfg.ChannelPrefix)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, sub: sub, users: map[string][]int32{}, owner: map[int32]string{}, done: make(chan struct{})}
	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		s.sub.conn.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s.connects = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_connects_total", Help: "Sockets welcomed."})
	s.delivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_messages_delivered_total", Help: "Frames written to sockets."})
	s.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "floor_dropped_total", Help: "Frames lost on a full socket buffer."})
	s.sockets = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_sockets", Help: "Open sockets."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.owner))
	})
	reg.MustRegister(s.connects, s.delivered, s.dropped, s.sockets,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/ws/token", s.handleToken)
	mux.HandleFunc("GET /ws", s.handleWS)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if s.ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		unix.Close(s.epfd)
		s.sub.conn.Close()
		return nil, err
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); _ = s.srv.Serve(s.ln) }()
	go func() { defer s.wg.Done(); s.relay() }()
	go func() { defer s.wg.Done(); s.readLoop() }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and closes every socket.
func (s *Server) Close() error {
	close(s.done)
	_ = s.srv.Close()
	_ = s.sub.conn.Close()
	s.wg.Wait()
	s.mu.Lock()
	for fd := range s.owner {
		unix.Close(int(fd))
	}
	s.owner, s.users = map[int32]string{}, map[string][]int32{}
	s.mu.Unlock()
	unix.Close(s.epfd)
	return nil
}

// handleToken answers with the session's user id as the "token".
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(s.cfg.SessionCookie)
	user := ""
	if err == nil && (s.cfg.SessionSecret == nil || signedHS256(c.Value, s.cfg.SessionSecret)) {
		user = claimOf(c.Value, s.cfg.UserClaim)
	}
	if user == "" {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"missing_session"}`))
		return
	}
	b, _ := json.Marshal(map[string]any{"token": user, "expires_in": 30})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// signedHS256 reports whether jwt carries a valid HS256 signature by secret.
func signedHS256(jwt string, secret []byte) bool {
	i := strings.LastIndexByte(jwt, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(jwt[:i]))
	return hmac.Equal(sig, m.Sum(nil))
}

// claimOf reads a claim from a JWT's payload without verifying it.
func claimOf(jwt, claim string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	p, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(p, &m) != nil {
		return ""
	}
	switch v := m[claim].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// handleWS upgrades, welcomes, and keeps the socket as a bare descriptor.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("token")
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	fd, err := dupFD(conn)
	conn.Close()
	if err != nil {
		return
	}
	s.mu.Lock()
	s.next++
	welcome := wsframe.AppendFrame(nil, ws.OpText, fmt.Appendf(nil, `{"type":"welcome","socket_id":"floor.%016x","user_id":%q,"heartbeat_s":30}`, s.next, user))
	if n, err := unix.Write(fd, welcome); err != nil || n != len(welcome) {
		s.mu.Unlock()
		unix.Close(fd)
		return
	}
	s.users[user] = append(s.users[user], int32(fd))
	s.owner[int32(fd)] = user
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev)
	s.mu.Unlock()
	s.connects.Inc()
}

func dupFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, errors.New("no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

func (s *Server) writeLocked(fd int32, f []byte) {
	if n, err := unix.Write(int(fd), f); err != nil || n != len(f) {
		s.dropped.Inc()
		return
	}
	s.delivered.Inc()
}

// readLoop discards what clients send and closes sockets that end.
func (s *Server) readLoop() {
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, 16<<10)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		n, err := unix.EpollWait(s.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for i := range n {
			fd := int(events[i].Fd)
			k, rerr := unix.Read(fd, buf)
			if k > 0 && buf[0] != 0x88 || errors.Is(rerr, unix.EAGAIN) {
				continue // pongs and pings: nothing to do at the floor
			}
			s.closeFD(int32(fd))
		}
	}
}

func (s *Server) closeFD(fd int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok := s.owner[fd]
	if !ok {
		return
	}
	delete(s.owner, fd)
	list := s.users[user]
	for i, x := range list {
		if x == fd {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.users, user)
	} else {
		s.users[user] = list
	}
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	unix.Close(int(fd))
}
