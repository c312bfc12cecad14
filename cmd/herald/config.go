package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout/publish"
	fanoutredis "github.com/herald-gw/herald/fanout/redis"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/replay"
)

// options are herald's settings. Each is a flag and an environment variable
// (HERALD_ + the flag name in capitals, dashes as underscores); a flag given
// on the command line wins. Secrets may also come from a file named by
// HERALD_<NAME>_FILE (or --<name>-file).
type options struct {
	Addr         string
	RedisURL     string
	RedisCluster string
	RedisTimeout time.Duration
	RedisHealth  time.Duration
	Prefix       string
	NodeID       string
	Dev          bool
	Standalone   bool // one process without Redis, asked for on purpose
	MetricsAddr  string
	Version      bool

	SessionSecret    string
	SessionPublicKey string
	SessionJWKS      string
	SessionAlgs      string
	SessionCookie    string
	SessionIssuer    string
	SessionAudience  string
	UserClaim        string
	ClockSkew        time.Duration
	WSTokenSecret    string
	WSTokenTTL       time.Duration

	AllowedOrigins string
	TrustedProxies string

	PingInterval      time.Duration
	IdleTimeout       time.Duration
	MaxMessageBytes   int
	MaxSocketsPerUser int
	MaxQueueBytes     int
	WriteTimeout      time.Duration
	CloseTimeout      time.Duration
	HandshakeTimeout  time.Duration
	TokenRate         float64
	TokenBurst        int
	HandshakeRate     float64
	HandshakeConc     int
	HandshakeQueue    int
	HandshakeWait     time.Duration
	HandshakeBurst    int
	UnsubscribeGrace  time.Duration

	Inbox          bool
	InboxMaxLen    int
	InboxRetention time.Duration

	AuthFailLimit     int
	AuthFailWindow    time.Duration
	AuthBlockDuration time.Duration
	AuthBlockIPv6Bits int

	DrainWindow      time.Duration
	DrainConcurrency int
	ShutdownTimeout  time.Duration

	PresenceInterval  time.Duration
	PresenceDebounce  time.Duration
	Presence          bool
	ClusterMaxSockets int
	ClusterCapPolicy  string
	Rebalance         bool
	RebalanceMargin   float64
	RebalanceRate     float64

	LogLevel  string
	LogFormat string

	addrSet bool            // --addr or HERALD_ADDR was given
	given   map[string]bool // flags given on the command line or in the environment, by name
}

// secretFlags may be given as files.
var secretFlags = []string{"session-secret", "ws-token-secret"}

func newFlagSet(o *options, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.Addr, "addr", ":8080", "listen address; 127.0.0.1:8080 with --dev")
	fs.StringVar(&o.RedisURL, "redis-url", "", "one Redis (redis://[:password@]host:6379/0, rediss:// for TLS) or Sentinel (redis-sentinel://host:26379,host2:26379/<master>)")
	fs.StringVar(&o.RedisCluster, "redis-cluster", "", "Redis Cluster seed nodes, host:port,host:port (or redis://[:password@]host:port,…); exclusive with --redis-url")
	fs.DurationVar(&o.RedisTimeout, "redis-timeout", replay.DefaultRedisTimeout, "bound on one attempt of a jti check in Redis; a timed-out attempt is sent once more, past the second the socket gets 1013")
	fs.DurationVar(&o.RedisHealth, "redis-health-interval", 2*time.Second, "how often the pub/sub connection is PINGed; a PING unanswered while nothing at all was read marks Redis lost (/readyz 503) within twice this; any message read counts as proof of life")
	fs.StringVar(&o.Prefix, "channel-prefix", "", "prefix of every Redis channel and key")
	fs.StringVar(&o.NodeID, "node-id", "", "replica id carried in socket ids (letters, digits, - and _); empty means random")
	fs.BoolVar(&o.Dev, "dev", false, "development mode: generate secrets, serve POST /dev/login and a test page; loopback only")
	fs.BoolVar(&o.Standalone, "standalone", false, "run as one process without Redis (in-memory broker, jti store and inbox): for a single replica only")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve /metrics on this separate address instead of --addr (e.g. :9090)")
	fs.BoolVar(&o.Version, "version", false, "print the version, the commit and the Go version, and exit")

	fs.StringVar(&o.SessionSecret, "session-secret", "", "HS* secret of session JWTs (at least 32 bytes)")
	fs.StringVar(&o.SessionPublicKey, "session-public-key", "", "path of the PEM public key of session JWTs")
	fs.StringVar(&o.SessionJWKS, "session-jwks", "", "JWKS of session JWTs: a file path or an https URL (refreshed)")
	fs.StringVar(&o.SessionAlgs, "session-algs", auth.DefaultSessionAlg, "comma-separated algorithms session JWTs may use")
	fs.StringVar(&o.SessionCookie, "session-cookie", gateway.DefaultSessionCookie, "cookie holding the session JWT")
	fs.StringVar(&o.SessionIssuer, "session-issuer", "", "required iss of session JWTs (empty: not checked)")
	fs.StringVar(&o.SessionAudience, "session-audience", "", "required aud of session JWTs (empty: not checked)")
	fs.StringVar(&o.UserClaim, "user-claim", auth.DefaultUserClaim, "claim holding the user id")
	fs.DurationVar(&o.ClockSkew, "clock-skew", auth.DefaultClockSkew, "clock skew tolerated on exp, nbf and iat")
	fs.StringVar(&o.WSTokenSecret, "ws-token-secret", "", "HS256 secret of WS tokens, shared by every replica (required with Redis; random per process without)")
	fs.DurationVar(&o.WSTokenTTL, "ws-token-ttl", auth.DefaultWSTokenTTL, "lifetime of a WS token")

	fs.StringVar(&o.AllowedOrigins, "allowed-origins", "", "comma-separated origins allowed cross-origin (https://app.example.com, https://*.example.com); empty: same origin only")
	fs.StringVar(&o.TrustedProxies, "trusted-proxies", "", "comma-separated proxy addresses or CIDRs whose X-Forwarded-For is believed")

	fs.DurationVar(&o.PingInterval, "ping-interval", gateway.DefaultPingInterval, "how often every socket is pinged")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "a socket silent this long is closed")
	fs.IntVar(&o.MaxMessageBytes, "max-message-bytes", gateway.DefaultMaxMessageBytes, "largest client message; larger closes with 1009")
	fs.IntVar(&o.MaxSocketsPerUser, "max-sockets-per-user", gateway.DefaultMaxSocketsPerUser, "sockets one user may hold on a replica; the next gets 4008")
	fs.IntVar(&o.MaxQueueBytes, "max-queue-bytes", gateway.DefaultMaxQueueBytes, "unsent bytes a socket may queue; past it the socket gets 4009 (messages over half of it are dropped)")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", gateway.DefaultWriteTimeout, "a socket whose output makes no progress this long is dropped")
	fs.DurationVar(&o.CloseTimeout, "close-timeout", gateway.DefaultCloseTimeout, "how long a closed socket may take to answer the close frame")
	fs.DurationVar(&o.HandshakeTimeout, "handshake-timeout", gateway.DefaultHandshakeTimeout, "bound on a WebSocket handshake, subscription included")
	fs.Float64Var(&o.TokenRate, "token-rate", gateway.DefaultTokenRate, "WS tokens per second one user may fetch on average")
	fs.IntVar(&o.TokenBurst, "token-burst", gateway.DefaultTokenBurst, "WS tokens one user may fetch at once")
	fs.Float64Var(&o.HandshakeRate, "handshake-rate", 0, "WebSocket handshakes per second a replica admits; those over it wait their turn in the handshake queue, which then holds those whose turn comes within half of --handshake-timeout (0: no cap)")
	fs.IntVar(&o.HandshakeBurst, "handshake-burst", 0, "handshakes admitted at once (0: the rate)")
	fs.IntVar(&o.HandshakeConc, "handshake-concurrency", gateway.DefaultHandshakeConcurrency, "most WebSocket handshakes at work at once; an adaptive limit below it follows their latency, and the others wait their turn before the upgrade")
	fs.IntVar(&o.HandshakeQueue, "handshake-queue", gateway.DefaultHandshakeQueue, "most handshakes waiting for their turn; when full, the newest of the address holding the most gets 4029")
	fs.DurationVar(&o.HandshakeWait, "handshake-queue-wait", gateway.DefaultHandshakeQueueWait, "longest a handshake waits for its turn before it gets 4029")
	fs.DurationVar(&o.UnsubscribeGrace, "unsubscribe-grace", fanoutredis.DefaultUnsubscribeGrace, "how long a user's channel stays subscribed after its last socket leaves")

	fs.BoolVar(&o.Inbox, "inbox", true, "keep each user's recent events for replay to sockets that reconnect with since (false: no ids, no replay)")
	fs.IntVar(&o.InboxMaxLen, "inbox-max-len", publish.DefaultInboxMaxLen, "events kept per user, and the most replayed per reconnect")
	fs.DurationVar(&o.InboxRetention, "inbox-retention", publish.DefaultInboxRetention, "age after which inbox events are dropped; a since older than what is kept gets a resync")

	fs.IntVar(&o.AuthFailLimit, "auth-fail-limit", 30, "failed authentications (forged or reused tokens, invalid sessions) one client IP may cause per --auth-fail-window before it is blocked (0: no blocking)")
	fs.DurationVar(&o.AuthFailWindow, "auth-fail-window", gateway.DefaultAuthFailWindow, "window in which --auth-fail-limit failures block an IP")
	fs.DurationVar(&o.AuthBlockDuration, "auth-block-duration", gateway.DefaultAuthBlockDuration, "how long a blocked IP gets 429 at the token endpoint and 4029 on /ws")
	fs.IntVar(&o.AuthBlockIPv6Bits, "auth-block-ipv6-prefix", gateway.DefaultAuthBlockIPv6Prefix, "leading bits of an IPv6 address counted as one client by --auth-fail-limit (128: each address)")

	fs.DurationVar(&o.DrainWindow, "drain-window", gateway.DefaultDrainWindow, "on shutdown, sockets are told to reconnect after a random delay below this")
	fs.IntVar(&o.DrainConcurrency, "drain-concurrency", gateway.DefaultDrainConcurrency, "sockets in their close handshake at once while draining")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 25*time.Second, "graceful shutdown deadline; sockets left then are dropped")

	fs.DurationVar(&o.PresenceInterval, "presence-interval", 2*time.Second, "with Redis: how often a replica refreshes its socket count (it expires after 3 intervals) and reconsiders its balance")
	fs.BoolVar(&o.Presence, "presence", false, "keep per-user socket counts across the cluster: CountConnections and online/offline events on the presence channel")
	fs.DurationVar(&o.PresenceDebounce, "presence-debounce", 5*time.Second, "a user's cluster-wide count must stay 0 this long before the offline event")
	fs.IntVar(&o.ClusterMaxSockets, "max-sockets-per-user-cluster", 0, "sockets one user may hold across the cluster; the next gets 4008 (0: no cap; a cap turns --presence on)")
	fs.StringVar(&o.ClusterCapPolicy, "max-sockets-per-user-cluster-policy", "refuse", "what --max-sockets-per-user-cluster does with a socket over it: refuse (it gets 4008) or evict-oldest (the user's oldest socket, on any replica, gets 4008)")
	fs.BoolVar(&o.Rebalance, "rebalance", true, "with Redis: a replica over (1+margin) x the average socket count sheds the excess gradually")
	fs.Float64Var(&o.RebalanceMargin, "rebalance-margin", 0.1, "share of the average a replica may hold above it before it sheds")
	fs.Float64Var(&o.RebalanceRate, "rebalance-rate", 0.02, "fraction of its sockets a replica over the margin sheds per second, at most 1 (--rebalance=false turns shedding off)")

	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or console")
	for _, name := range secretFlags {
		fs.String(name+"-file", "", "file holding --"+name)
	}
	return fs
}

// envName maps a flag name to its environment variable.
func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions reads flags from args and, for every flag not on the command
// line, its environment variable.
func parseOptions(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, out)
	fs.Usage = func() { printUsage(out, fs) }
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	o.given = map[string]bool{}
	for name := range onCommandLine {
		o.given[name] = true
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCommandLine[f.Name] || f.Name == "version" { // a HERALD_VERSION variable is someone else's
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			o.given[f.Name] = true
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	for _, name := range secretFlags {
		file := fs.Lookup(name + "-file").Value.String()
		value := fs.Lookup(name).Value.String()
		if file == "" {
			continue
		}
		if value != "" {
			errs = append(errs, fmt.Errorf("--%s and --%s-file (or %s and %s_FILE) are both set; give one", name, name, envName(name), envName(name)))
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %s: %w", envName(name)+"_FILE", err))
			continue
		}
		_ = fs.Set(name, strings.TrimRight(string(b), "\r\n"))
	}
	if err := publish.CheckPrefix(o.Prefix); err != nil {
		errs = append(errs, fmt.Errorf("--channel-prefix (%s): %w", envName("channel-prefix"), err))
	}
	o.addrSet = onCommandLine["addr"] || getenv(envName("addr")) != ""
	if o.Dev && !o.addrSet {
		o.Addr = "127.0.0.1:8080"
	}
	if o.Dev {
		if err := requireLoopback(o.Addr); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

// requireLoopback refuses a listen address that other machines can reach.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("--dev serves a login that mints sessions for anyone, so it only listens on loopback: --addr %q is not a loopback address (use 127.0.0.1:8080)", addr)
	}
	return nil
}

// list splits a comma-separated setting, dropping empty entries.
func list(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// prefixes parses trusted proxies: addresses or CIDRs.
func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range list(s) {
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", item, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an address or a CIDR", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
