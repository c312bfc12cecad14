package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway/admit"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/gateway/wscore"
	"github.com/herald-gw/herald/replay"
)

// Config configures a Server. New fills the zero values with the defaults
// given in each field's comment and refuses unsafe or inconsistent settings.
type Config struct {
	// Auth verifies session JWTs and mints and checks WS tokens. Required.
	Auth *auth.Authenticator
	// Replay records consumed WS token ids. Required.
	Replay replay.Store
	// Broker carries messages between replicas. Required.
	Broker fanout.Broker
	// Inbox keeps each user's recent events for the catch-up: SendToUser appends
	// to it, and a socket opened with since=<last inbox id> gets what it
	// missed (see inbox.go). Nil means no inbox: SendToUser publishes plain
	// frames, and a socket that asks to catch up (since) gets {"type":"resync"}.
	Inbox inbox.Inbox
	// NodeID names this replica in socket ids ("<NodeID>.<suffix>"); it must
	// be the id the broker was given. Empty means a random id (only safe with
	// a broker that does not route by node, such as fanout.Memory).
	NodeID string

	// SessionCookie is the cookie holding the session JWT. Empty means
	// "access_token".
	SessionCookie string
	// AllowedOrigins lists the browser origins (scheme://host[:port]) allowed
	// to fetch tokens and open sockets cross-origin; an entry may start with
	// "*." after the scheme to allow every subdomain ("https://*.example.com").
	// An entry without a port allows the scheme's default port only; an entry
	// with a port allows that port only, wildcard or not.
	// A request without Origin, or whose Origin is the request's own Host, is
	// always allowed. Empty means same-origin only.
	AllowedOrigins []string
	// TrustedProxies are the networks whose X-Forwarded-For is believed when
	// taking a client's IP. Empty means the TCP peer is the client.
	TrustedProxies []netip.Prefix

	// PingInterval is how often the server pings every socket. Zero means 30s.
	PingInterval time.Duration
	// IdleTimeout closes a socket from which nothing arrived for this long.
	// Zero means 60s. It must exceed PingInterval.
	IdleTimeout time.Duration
	// MaxMessageBytes bounds a client message; larger ones close the socket
	// with 1009. Zero means 4096.
	MaxMessageBytes int
	// MaxSocketsPerUser caps one user's sockets on this replica; the socket
	// over the cap is closed with 4008. Zero means 16.
	MaxSocketsPerUser int
	// MaxQueueBytes caps a socket's unsent output; a socket over it is closed
	// with 4009. Zero means 256 KiB. The largest message relayed to sockets
	// is half of it: a larger one is dropped (and counted), never queued.
	MaxQueueBytes int
	// WriteTimeout closes a socket whose output made no progress for this
	// long. Zero means 10s.
	WriteTimeout time.Duration
	// CloseTimeout is how long a socket the server closes may take to answer
	// with its close frame before it is dropped. Zero means 5s.
	CloseTimeout time.Duration
	// HandshakeTimeout bounds a WebSocket handshake from the HTTP request to
	// the welcome frame, including the broker subscription. Zero means 10s.
	HandshakeTimeout time.Duration

	// TokenRate is how many WS tokens one user may fetch per second, on
	// average, on this replica; TokenBurst how many at once. Zero means 2
	// and 30 (a user re-opening 16 tabs at once gets all of them).
	TokenRate  float64
	TokenBurst int
	// HandshakeConcurrency is the most WebSocket handshakes at work at once
	// (consuming their token, subscribing, reading the inbox) on this
	// replica. Below it an adaptive limit follows the handshakes' latency:
	// when the CPU or Redis saturates, fewer are let in. A handshake over
	// the limit waits for its turn in a queue before its upgrade, having
	// cost only its request and a token check; it is refused with 4029
	// (after the upgrade) only when it has waited HandshakeQueueWait or the
	// queue is full. Zero means 256.
	HandshakeConcurrency int
	// HandshakeQueue is the most handshakes waiting for their turn. When
	// it is full the newest waiter of the client address holding the most
	// is refused with 4029. Zero means 20,000.
	HandshakeQueue int
	// HandshakeQueueWait is the longest a handshake waits for its turn; it
	// is then refused with 4029. Zero means 30s.
	HandshakeQueueWait time.Duration
	// HandshakeRate caps WebSocket handshakes per second on this replica,
	// through the same queue: the queue then holds at most the handshakes
	// whose turn comes within half of HandshakeTimeout. Zero means no cap.
	// HandshakeBurst is how many may come at once; zero means
	// HandshakeRate.
	HandshakeRate  float64
	HandshakeBurst int

	// AuthFailLimit is how many failed authentications (a forged or corrupt
	// session or WS token, a reused WS token) one client IP may cause within
	// AuthFailWindow; the next request from it is blocked for
	// AuthBlockDuration: 429 with Retry-After at the token endpoint, 4029
	// after the upgrade. Counted per replica. Zero means no blocking.
	AuthFailLimit int
	// AuthFailWindow is the counting window. Zero means 1m.
	AuthFailWindow time.Duration
	// AuthBlockDuration is how long a block lasts. Zero means 5m.
	AuthBlockDuration time.Duration
	// AuthBlockIPv6Prefix is how many leading bits of an IPv6 address name
	// one client for this count (an IPv4 client is its address). Zero means
	// 64, what one subscriber is usually given; 128 counts each address.
	AuthBlockIPv6Prefix int

	// DrainWindow spreads the reconnects of a graceful shutdown: each socket
	// is told to reconnect after a random delay below it. Zero means 5s.
	DrainWindow time.Duration
	// DrainConcurrency bounds how many sockets are in their close handshake
	// at once during a graceful shutdown. Zero means 1024.
	DrainConcurrency int

	// Presence is the membership the replicas share (presence.Redis in a
	// cluster). Nil means none: no rebalancing, and CountConnections counts
	// this replica only. The replica refreshes its entry (its socket count)
	// every PresenceInterval; zero means 2s.
	Presence         presence.Store
	PresenceInterval time.Duration
	// UserPresence also keeps every user's socket count in Presence:
	// CountConnections across the cluster, and online/offline events. It
	// costs Presence one operation per connect and per disconnect (batched
	// off the handshake). ClusterMaxSocketsPerUser, when positive, refuses a
	// user's socket with 4008 once the user holds that many across the
	// cluster; it needs UserPresence and costs the handshake one Presence
	// round trip.
	UserPresence             bool
	ClusterMaxSocketsPerUser int
	// ClusterCapPolicy is what the cluster-wide cap does with a socket
	// over it: CapRefuse (the zero value) closes the new socket with 4008;
	// CapEvictOldest welcomes it and closes the user's oldest socket, on
	// whichever replica holds it, with 4008 and the reason
	// "replaced_by_newer_socket".
	ClusterCapPolicy CapPolicy
	// Rebalance lets a replica holding more than (1+RebalanceMargin) × the
	// cluster's average socket count shed sockets (reconnect frame with an
	// after_ms below DrainWindow, then 1012) at RebalanceRate × its sockets
	// per second, never below the average. It needs Presence. Zero margin
	// means 0.1; zero rate means 0.02 (2% per second).
	Rebalance       bool
	RebalanceMargin float64
	RebalanceRate   float64

	// Pollers is the number of epoll loops; Writers the number of write
	// workers. Zero means GOMAXPROCS for each.
	Pollers int
	Writers int
	// KeepMemory leaves the memory a burst of handshakes freed to the Go
	// runtime's background scavenger. False (the zero value) returns it to
	// the operating system once per burst (1,000 handshakes or more, then
	// a second with fewer than 50): see memory.go.
	KeepMemory bool

	// Logger receives the gateway's logs. Nil means no logs.
	Logger *zap.Logger
	// Registerer receives the gateway's metrics; Gatherer serves /metrics.
	// Nil means no metrics, and no /metrics endpoint.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// CapPolicy is what the cluster-wide per-user cap does with a socket over
// it (Config.ClusterCapPolicy).
type CapPolicy string

// The cluster-wide cap's policies.
const (
	CapRefuse      CapPolicy = ""             // the new socket gets 4008
	CapEvictOldest CapPolicy = "evict-oldest" // the user's oldest socket gets 4008
)

// The defaults of Config's zero values. cmd/herald uses them as its flags'
// defaults, so that each is written once.
const (
	DefaultSessionCookie        = "access_token"
	DefaultPingInterval         = wscore.DefaultPingInterval
	DefaultIdleTimeout          = wscore.DefaultIdleTimeout
	DefaultMaxMessageBytes      = wscore.DefaultMaxMessageBytes
	DefaultMaxSocketsPerUser    = 16
	DefaultMaxQueueBytes        = wscore.DefaultMaxQueueBytes
	DefaultWriteTimeout         = wscore.DefaultWriteTimeout
	DefaultCloseTimeout         = wscore.DefaultCloseTimeout
	DefaultHandshakeTimeout     = 10 * time.Second
	DefaultHandshakeConcurrency = 256
	DefaultHandshakeQueue       = 20000
	DefaultHandshakeQueueWait   = 30 * time.Second
	DefaultTokenRate            = 2.0
	DefaultTokenBurst           = 30
	DefaultDrainWindow          = 5 * time.Second
	DefaultDrainConcurrency     = 1024
	DefaultAuthFailWindow       = time.Minute
	DefaultAuthBlockDuration    = 5 * time.Minute
)

// DefaultAuthBlockIPv6Prefix is how many leading bits of an IPv6 address
// name one client for blocking (admit's default).
const DefaultAuthBlockIPv6Prefix = admit.DefaultAuthBlockIPv6Prefix

func (c *Config) setDefaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if c.SessionCookie == "" {
		c.SessionCookie = DefaultSessionCookie
	}
	def(&c.PingInterval, DefaultPingInterval)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.CloseTimeout, DefaultCloseTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.HandshakeQueueWait, DefaultHandshakeQueueWait)
	def(&c.DrainWindow, DefaultDrainWindow)
	def(&c.AuthFailWindow, DefaultAuthFailWindow)
	def(&c.AuthBlockDuration, DefaultAuthBlockDuration)
	defInt(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	defInt(&c.MaxSocketsPerUser, DefaultMaxSocketsPerUser)
	defInt(&c.MaxQueueBytes, DefaultMaxQueueBytes)
	defInt(&c.DrainConcurrency, DefaultDrainConcurrency)
	defInt(&c.HandshakeConcurrency, DefaultHandshakeConcurrency)
	defInt(&c.HandshakeQueue, DefaultHandshakeQueue)
	defInt(&c.Pollers, runtime.GOMAXPROCS(0))
	defInt(&c.Writers, runtime.GOMAXPROCS(0))
	defInt(&c.TokenBurst, DefaultTokenBurst)
	if c.TokenRate == 0 {
		c.TokenRate = DefaultTokenRate
	}
	if c.HandshakeBurst == 0 {
		c.HandshakeBurst = max(1, int(c.HandshakeRate))
	}
	def(&c.PresenceInterval, 2*time.Second)
	if c.RebalanceMargin == 0 {
		c.RebalanceMargin = 0.1
	}
	if c.RebalanceRate == 0 {
		c.RebalanceRate = 0.02
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Auth == nil {
		errs = append(errs, errors.New("Auth is required"))
	}
	if c.Replay == nil {
		errs = append(errs, errors.New("Replay is required"))
	}
	if c.Broker == nil {
		errs = append(errs, errors.New("Broker is required"))
	}
	if c.NodeID != "" && !publish.ValidNodeID(c.NodeID) {
		errs = append(errs, fmt.Errorf("node id %q: use 1 to 64 letters, digits, '-' or '_'", c.NodeID))
	}
	core := c.coreConfig()
	if err := core.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.HandshakeTimeout < 0 || c.HandshakeQueueWait < 0 || c.DrainWindow < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.MaxSocketsPerUser < 0 || c.DrainConcurrency < 0 || c.TokenBurst < 0 || c.TokenRate < 0 || c.HandshakeRate < 0 ||
		c.HandshakeConcurrency < 0 || c.HandshakeQueue < 0 {
		errs = append(errs, errors.New("counts and rates must not be negative"))
	}
	if c.AuthBlockIPv6Prefix < 0 || c.AuthBlockIPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("auth block IPv6 prefix /%d: want 1 to 128 bits", c.AuthBlockIPv6Prefix))
	}
	if c.PresenceInterval < 0 || c.RebalanceMargin < 0 || c.RebalanceRate < 0 || c.RebalanceRate > 1 || c.ClusterMaxSocketsPerUser < 0 {
		errs = append(errs, errors.New("presence interval, rebalance margin and cluster cap must not be negative; the rebalance rate must be in (0, 1]"))
	}
	if c.Presence == nil && (c.Rebalance || c.UserPresence) {
		errs = append(errs, errors.New("rebalancing and user presence need a Presence store"))
	}
	if c.ClusterCapPolicy != CapRefuse && c.ClusterCapPolicy != CapEvictOldest {
		errs = append(errs, fmt.Errorf("cluster cap policy %q: want %q or %q", c.ClusterCapPolicy, CapRefuse, CapEvictOldest))
	}
	if c.ClusterMaxSocketsPerUser > 0 && !c.UserPresence {
		errs = append(errs, errors.New("a cluster-wide per-user cap needs user presence"))
	}
	return errors.Join(errs...)
}

// coreConfig is the socket core's part of c.
func (c *Config) coreConfig() wscore.Config {
	return wscore.Config{
		Pollers:         c.Pollers,
		Writers:         c.Writers,
		MaxMessageBytes: c.MaxMessageBytes,
		MaxQueueBytes:   c.MaxQueueBytes,
		PingInterval:    c.PingInterval,
		IdleTimeout:     c.IdleTimeout,
		WriteTimeout:    c.WriteTimeout,
		CloseTimeout:    c.CloseTimeout,
	}
}
