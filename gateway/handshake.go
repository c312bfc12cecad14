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
	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/gateway/admit"
	"github.com/herald-gw/herald/gateway/wscore"
	"github.com/herald-gw/herald/replay"
)

// handleWS upgrades GET /ws?token=… to a WebSocket. Problems a browser must
// be able to read (token expired, invalid or reused; try again later; too
// many sockets) are reported after the upgrade as close codes. The handler's
// goroutine ends with the handshake: the socket then belongs to the core.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// Counted in live before the draining check: Shutdown sets draining
	// first and then waits for live to reach 0, so no request slips
	// between them.
	h := s.newHandshake(handshakeInput{
		token:     q.Get("token"),
		since:     q.Get("since"),
		hasSince:  q.Has("since"),
		ip:        admit.ClientIP(r, s.cfg.TrustedProxies),
		userAgent: r.UserAgent(),
		path:      r.URL.Path,
	})
	defer h.exit()
	if s.draining.Load() {
		writeError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	if !s.allowOrigin(w, r) {
		return
	}
	if !h.admit(r.Context().Done()) {
		return // the client left while it waited for its turn
	}
	up := ws.HTTPUpgrader{Timeout: s.cfg.HandshakeTimeout}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			nc.Close() // gobwas has answered 400 (or 405/426)
		}
		return
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		// A client that wrote frames before reading the 101: they are
		// parsed before the poller takes over.
		early, _ = rw.Reader.Peek(n)
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandshakeTimeout)
	defer cancel()
	h.run(ctx, nc, early)
}

// handshakeInput is what a handshake takes from its upgrade request, as
// plain values: any upgrade path can build it. The origin is checked
// before.
type handshakeInput struct {
	token     string // the WS token (query parameter token)
	since     string // the inbox position the client has (query parameter since)
	hasSince  bool   // since was given, even empty
	ip        string // the client's address, behind trusted proxies
	userAgent string // as sent; truncated when stored
	path      string // the request's path, for the auth-failure log
}

// handshake is one socket's handshake, from its request to the socket's
// hand-over to the core or its refusal. It runs on one goroutine at a time
// (the raw path, rawws.go, hands it from the connection's reader to a
// worker, through admission's lock or a channel); no field is shared.
//
// The steps, in order; each returns the Disconnect that refuses the socket,
// or nil to go on:
//
//	admit      before the upgrade: the address is not blocked, the token
//	           verifies (an HMAC, nothing in Redis), admission gives a turn.
//	           A refusal is kept, and told after the upgrade as a close code.
//	run        after the upgrade: takes the socket over (newConn), then
//	  consume    the token's jti, once in the cluster (replay store); with
//	             an inbox.TokenReader, readInbox does it in the same step
//	  count      presence's per-user count and the cluster-wide cap
//	  register   into the registry, behind the socket's inbox gate if any
//	  subscribe  waits for the broker's confirmation of the subscriptions
//	  readInbox  with an inbox: the read, and the sync message back (inbox.go)
//	  welcome    queues the welcome and, with an inbox, the catch-up
//	  (without an inbox the welcome comes before register, and a since is
//	  answered with resync once subscribed)
//
// exit is the one way out, deferred by the caller: it ends the inbox gate,
// releases the admission turn, then either refuses the socket (registry
// and presence undone, Shed with the close code) or counts and logs it,
// and hands the socket to the core (Start). With no socket (refused before
// the upgrade, or the upgrade failed) it ends the request's count in live.
type handshake struct {
	s     *Server
	in    handshakeInput
	start time.Time

	claims auth.WSClaims
	ticket *ticket     // the admission turn; nil when refused before it
	worked bool        // the turn did the handshake's work: its release samples it
	d      *Disconnect // why the socket is refused; nil while it is not

	c     *Conn              // nil until the upgraded socket is taken over
	early []byte             // frames the client sent before it read the 101
	ready [2]<-chan struct{} // the user's and the socket's subscriptions (register)
	gate  *inboxGate         // the socket's catch-up gate; nil without an inbox
	spent bool               // the token was consumed on its own (consume), not in the inbox read
	read  inbox.Result       // the inbox read (readInbox)
	head  inbox.StreamID     // read.Head, parsed
}

// newHandshake starts a handshake and counts its request in live.
func (s *Server) newHandshake(in handshakeInput) *handshake {
	s.live.Add(1)
	return &handshake{s: s, in: in, start: time.Now()}
}

// admit verifies the token and waits for admission. It returns false
// when the client left while it waited: no upgrade follows.
func (h *handshake) admit(gone <-chan struct{}) bool {
	if h.d = h.verify(); h.d != nil {
		return true
	}
	left := false
	h.ticket, h.d, left = h.enter(gone)
	return !left
}

// verify refuses a handshake from a blocked address or with a token that
// does not verify. It costs an HMAC and nothing in Redis: the token is
// consumed only once the handshake is admitted.
func (h *handshake) verify() *Disconnect {
	s := h.s
	if blocked, _ := s.blocker.Blocked(h.in.ip, time.Now()); blocked {
		s.metrics.authFailures.WithLabelValues("ip_blocked").Inc()
		return DisconnectRateLimited
	}
	claims, err := s.cfg.Auth.VerifyWSToken(h.in.token)
	if err != nil {
		d := DisconnectTokenInvalid
		if errors.Is(err, auth.ErrTokenExpired) {
			d = DisconnectTokenExpired
		}
		h.authFailed(d.Reason, zap.Error(err))
		return d
	}
	h.claims = claims
	return nil
}

// enter waits for the handshake's admission (admission.go), before its
// upgrade. It returns the turn, or why the handshake is refused, or gone
// when the client left while it waited.
func (h *handshake) enter(gone <-chan struct{}) (tk *ticket, d *Disconnect, left bool) {
	s, claims := h.s, h.claims
	return h.admitted(s.admission.wait(h.in.ip, claims.UserID, claims.JTI, s.drainCh, gone))
}

// admitted is enter's outcome from admission's: the turn, or why the
// handshake is refused, or gone when the client left while it waited.
func (h *handshake) admitted(tk *ticket, err error) (*ticket, *Disconnect, bool) {
	claims := h.claims
	switch {
	case err == nil:
		return tk, nil, false
	case errors.Is(err, errTokenInFlight):
		h.authFailed("token_reused", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectTokenReused, false
	case errors.Is(err, errAdmissionDrain):
		return nil, DisconnectServiceRestart, false
	case errors.Is(err, errAdmissionGone):
		return nil, nil, true
	case errors.Is(err, errAdmissionWait): // the replica is slow: not the address's fault
		h.authFailed("queue_timeout", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectRateLimited, false
	default: // the queue is full, and this address holds the most of it
		h.authFailed("rate_limited", zap.String("user", claims.UserID), zap.Error(err))
		return nil, DisconnectRateLimited, false
	}
}

// run takes the upgraded connection over and, unless admit refused the
// handshake, runs its steps until one refuses the socket. early is what the
// client sent before it read the 101.
func (h *handshake) run(ctx context.Context, nc net.Conn, early []byte) {
	c, err := h.s.newConn(nc, h.in)
	if err != nil {
		h.s.log.Warn("cannot take over an upgraded socket", zap.Error(err))
		nc.Close()
		return
	}
	h.c, h.early = c, early
	if h.d != nil {
		return
	}
	h.worked = true
	for _, step := range h.steps() {
		if h.d = step(ctx); h.d != nil {
			return
		}
	}
}

// steps lists the handshake's steps after the upgrade. Without an inbox
// the welcome is queued first (the core holds it until Start), so that the
// messages delivered once the socket is registered come after it. With an
// inbox it waits for the read, and the socket's gate holds those messages
// meanwhile (inbox.go). A cluster-wide cap refuses before any of it.
func (h *handshake) steps() []func(context.Context) *Disconnect {
	if h.s.cfg.Inbox == nil {
		return []func(context.Context) *Disconnect{h.consume, h.count, h.welcome, h.register, h.subscribe, h.resyncSince}
	}
	// With an inbox.TokenReader, readInbox consumes the token, after the
	// subscription. While the broker is not ready (connecting, resubscribing
	// or without Redis) the token is consumed first, on its own: a Redis
	// that is away refuses it at once (1013), without a wait for a
	// subscription, and one that answers lets it wait for the broker.
	if _, ok := h.s.cfg.Inbox.(inbox.TokenReader); ok && h.s.broker.Ready() {
		return []func(context.Context) *Disconnect{h.identify, h.count, h.register, h.subscribe, h.readInbox, h.welcome}
	}
	return []func(context.Context) *Disconnect{h.consume, h.count, h.register, h.subscribe, h.readInbox, h.welcome}
}

// consume spends the token's jti. The store's clock, not this replica's,
// decides whether the token is still alive: a replica whose clock lags
// cannot revive a token whose record has expired. A store that started
// after the token was minted (Redis restarted without its data) refuses it
// too. With an inbox.TokenReader, readInbox spends it instead, in the
// inbox read's own step: the refusal is then told once subscribed.
func (h *handshake) consume(ctx context.Context) *Disconnect {
	first, err := h.use().Consume(ctx, h.s.cfg.Replay)
	if !first && err == nil {
		err = replay.ErrReused
	}
	if d := h.refuseToken(err); d != nil {
		return d
	}
	h.spent = true
	return h.identify(ctx)
}

// use is the token's use, for the replay store.
func (h *handshake) use() replay.Use {
	claims := h.claims
	return replay.Use{JTI: claims.JTI, User: claims.UserID, MintedBy: claims.MintedBy,
		Expires: claims.ExpiresAt.Add(h.s.cfg.Auth.ClockSkew())}
}

// refuseToken turns the replay store's refusal of the token (err) into the
// socket's, or nil for no error.
func (h *handshake) refuseToken(err error) *Disconnect {
	user := zap.String("user", h.claims.UserID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, replay.ErrExpired):
		h.authFailed(DisconnectTokenExpired.Reason, user, zap.Error(err))
		return DisconnectTokenExpired
	case errors.Is(err, replay.ErrReused):
		h.authFailed("token_reused", user)
		return DisconnectTokenReused
	}
	h.authFailed("replay_unavailable", user, zap.Error(err))
	return DisconnectTryAgainLater
}

// identify names the socket: its user and its id.
func (h *handshake) identify(context.Context) *Disconnect {
	h.c.user = h.claims.UserID
	h.c.id = h.s.newSocketID()
	return nil
}

// count records the socket in presence (presence.go), refusing it at a
// cluster-wide cap.
func (h *handshake) count(ctx context.Context) *Disconnect { return h.s.presenceAdmit(ctx, h.c) }

// register adds the socket to the registry, behind its inbox gate when
// there is an inbox: from here fan-out finds it.
func (h *handshake) register(context.Context) *Disconnect {
	s, c := h.s, h.c
	if s.cfg.Inbox != nil {
		h.gate = newInboxGate(s.cfg.MaxQueueBytes)
		c.gate.Store(h.gate)
	}
	userReady, socketReady, err := s.reg.add(c)
	if err != nil {
		s.log.Info("socket refused: per-user cap", zap.String("user", c.user), zap.Int("cap", s.cfg.MaxSocketsPerUser))
		return DisconnectTooMany
	}
	h.ready = [2]<-chan struct{}{userReady, socketReady}
	if _, ok := c.to(evRegister); !ok { // ended meanwhile: its end did not see the registration
		s.reg.remove(c)
	}
	if s.draining.Load() { // registered after the drain listed the sockets
		return DisconnectServiceRestart
	}
	return nil
}

// subscribe waits for the broker's confirmation of the user's
// subscription, and of the socket's with a broker that subscribes sockets
// one by one.
func (h *handshake) subscribe(ctx context.Context) *Disconnect {
	s := h.s
	for _, ready := range h.ready {
		if ready == nil { // no per-socket subscription
			continue
		}
		select {
		case <-ready:
		case <-s.drainCh:
			return DisconnectServiceRestart
		case <-ctx.Done():
			s.log.Warn("socket refused: broker subscription not confirmed in time",
				zap.String("user", h.c.user), zap.String("socket_id", h.c.id), zap.Duration("timeout", s.cfg.HandshakeTimeout))
			return DisconnectTryAgainLater
		}
	}
	s.reg.settled(h.c.user) // the registry keeps no closed channel per user
	return nil
}

// welcome queues the welcome frame, the one place it is queued. With an
// inbox it follows the read: without since it carries the inbox head; with
// since the catch-up follows it (inbox.go).
func (h *handshake) welcome(context.Context) *Disconnect {
	s, c := h.s, h.c
	withInbox := h.gate != nil
	head := ""
	if withInbox && !h.in.hasSince {
		head = h.read.Head
	}
	c.enqueue(s.welcomeFrame(c, head))
	switch {
	case withInbox && !h.in.hasSince:
		s.inbox.catchUps.WithLabelValues(catchUpHead).Inc()
	case withInbox:
		s.queueCatchUp(c, h.read)
	}
	return nil
}

// resyncSince answers a since without an inbox: nothing can be caught up,
// the client refetches.
func (h *handshake) resyncSince(context.Context) *Disconnect {
	if h.in.hasSince {
		h.c.enqueue(frameResync)
	}
	return nil
}

// exit is the handshake's one way out (see handshake); it runs once.
func (h *handshake) exit() {
	s, c := h.s, h.c
	if h.gate != nil && h.gate.end(c, h.d == nil, h.head) && h.d == nil {
		h.d = DisconnectSlowConsumer // the frames held during the catch-up passed the cap
	}
	h.ticket.release(h.worked)
	if c == nil { // no socket: the request ends here, not in connEnded
		s.live.Add(-1)
		return
	}
	if h.d != nil {
		s.reg.remove(c)
		s.presenceLeft(c)
		c.ws.Shed(h.d, s.cfg.CloseTimeout)
		c.ws.Start(nil)
		return
	}
	// A socket closed while its handshake ran (a disconnect command, a
	// drain) gets its close frame and never the welcome. One still open is
	// welcomed: counted and logged before Start, so that its client, once
	// it reads the welcome, finds it counted and logged, and so that its
	// disconnect, which Start may report at once, is logged after.
	if c.ws.State() == wscore.Handshake {
		if _, ok := c.to(evWelcome); ok {
			s.metrics.connects.Inc()
			s.handshakes.Add(1)
			s.metrics.handshake.Observe(time.Since(h.start).Seconds())
			s.log.Info("connect",
				zap.String("user", c.user),
				zap.String("socket_id", c.id),
				zap.String("ip", c.remoteIP),
				zap.String("user_agent", c.userAgent),
			)
		}
	}
	c.ws.Start(h.early)
}

// authFailed logs and counts a refused handshake (Server.authFailed).
func (h *handshake) authFailed(reason string, fields ...zap.Field) {
	h.s.authFailedAt(h.in.ip, h.in.path, reason, fields...)
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
func (s *Server) newConn(nc net.Conn, in handshakeInput) (*Conn, error) {
	c := &Conn{
		srv:         s,
		remoteIP:    in.ip,
		userAgent:   truncate(in.userAgent, 256),
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
