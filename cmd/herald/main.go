// Command herald runs one replica of the herald WebSocket notification
// gateway. It only turns flags and environment into configuration; the work
// is done by the gateway, auth, replay and fanout packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/fanout/publish"
	fanoutredis "github.com/herald-gw/herald/fanout/redis"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/gateway/membership/presence"
	"github.com/herald-gw/herald/replay"
)

// listen opens the listener; tests replace it.
var listen = net.Listen

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(1)
	}
}

// run starts herald and blocks until ctx is cancelled (SIGTERM, SIGINT), then
// shuts it down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "token" {
		return runToken(args[1:], getenv, stdout, stderr)
	}
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	build := readBuildInfo()
	if o.Version {
		printVersion(stdout, build)
		return nil
	}
	if err := checkMode(o); err != nil {
		return err
	}
	if o.Dev {
		if err := devSecrets(o, stdout); err != nil {
			return err
		}
	}
	log, err := newLogger(o.LogLevel, o.LogFormat, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr may not sync
	useRedisLogger(log.Named("redis"))

	authCfg, err := authConfig(o)
	if err != nil {
		return err
	}
	authn, err := auth.New(ctx, authCfg)
	if err != nil {
		return err
	}
	defer authn.Close()

	nodeID := o.NodeID
	if nodeID == "" {
		nodeID = publish.NewNodeID()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerBuildInfo(reg, build)

	var (
		store   replay.Store
		broker  fanout.Broker
		inboxes inbox.Inbox // the users' inboxes
		pres    presence.Store
	)
	inboxCfg := publish.InboxConfig{MaxLen: o.InboxMaxLen, Retention: o.InboxRetention}
	presCfg := presence.Config{Prefix: o.Prefix, TTL: 3 * o.PresenceInterval, Debounce: o.PresenceDebounce}
	if o.RedisURL == "" && o.RedisCluster == "" {
		store = replay.NewMemory(replay.MemoryConfig{})
		broker = fanout.NewMemory(fanout.MemoryConfig{Logger: log.Named("broker"), Registerer: reg})
		if o.Presence || o.ClusterMaxSockets > 0 { // one process: nothing to rebalance, and no presence events
			if pres, err = presence.NewMemory(presCfg); err != nil {
				return err
			}
		}
		if o.Inbox {
			mi, err := inbox.NewMemory(broker, inbox.MemoryConfig{InboxConfig: inboxCfg})
			if err != nil {
				return err
			}
			inboxes = mi
		}
		log.Info("standalone mode: in-memory broker, jti store and inbox, no Redis; run one replica only")
	} else {
		client, err := newRedisClient(o)
		if err != nil {
			return err
		}
		defer client.Close()
		rs, err := replay.NewRedis(client, replay.RedisConfig{Prefix: o.Prefix, Timeout: o.RedisTimeout})
		if err != nil {
			return err
		}
		store = rs
		bcfg := fanoutredis.Config{
			Prefix:           o.Prefix,
			NodeID:           nodeID,
			UnsubscribeGrace: o.UnsubscribeGrace,
			HealthInterval:   o.RedisHealth,
			Logger:           log.Named("broker"),
			Registerer:       reg,
		}
		if cc, ok := client.(*redis.ClusterClient); ok {
			broker, err = fanoutredis.NewCluster(cc, bcfg)
		} else {
			broker, err = fanoutredis.New(client.(*redis.Client), bcfg)
		}
		if err != nil {
			return err
		}
		// The membership, in every Redis mode: rebalancing needs it, and
		// --presence adds the per-user counts (one slot on a cluster).
		if pres, err = presence.NewRedis(client, presCfg); err != nil {
			return err
		}
		if o.Inbox {
			ri, err := inbox.NewRedis(client, inbox.RedisConfig{Prefix: o.Prefix, InboxConfig: inboxCfg})
			if err != nil {
				return err
			}
			inboxes = ri
		}
		log.Info("cluster mode: Redis broker and jti store", zap.String("redis", redisMode(o)), zap.String("prefix", o.Prefix))
	}
	defer store.Close()
	defer broker.Close()
	if inboxes != nil {
		defer inboxes.Close()
	}

	trusted, err := prefixes(o.TrustedProxies)
	if err != nil {
		return err
	}
	gw, err := gateway.New(gateway.Config{
		Auth:                     authn,
		Replay:                   store,
		Broker:                   broker,
		Inbox:                    inboxes,
		NodeID:                   nodeID,
		SessionCookie:            o.SessionCookie,
		AllowedOrigins:           list(o.AllowedOrigins),
		TrustedProxies:           trusted,
		PingInterval:             o.PingInterval,
		IdleTimeout:              o.IdleTimeout,
		MaxMessageBytes:          o.MaxMessageBytes,
		MaxSocketsPerUser:        o.MaxSocketsPerUser,
		MaxQueueBytes:            o.MaxQueueBytes,
		WriteTimeout:             o.WriteTimeout,
		CloseTimeout:             o.CloseTimeout,
		HandshakeTimeout:         o.HandshakeTimeout,
		TokenRate:                o.TokenRate,
		TokenBurst:               o.TokenBurst,
		HandshakeRate:            o.HandshakeRate,
		HandshakeConcurrency:     o.HandshakeConc,
		HandshakeQueue:           o.HandshakeQueue,
		HandshakeQueueWait:       o.HandshakeWait,
		HandshakeBurst:           o.HandshakeBurst,
		AuthFailLimit:            o.AuthFailLimit,
		AuthFailWindow:           o.AuthFailWindow,
		AuthBlockDuration:        o.AuthBlockDuration,
		AuthBlockIPv6Prefix:      o.AuthBlockIPv6Bits,
		DrainWindow:              o.DrainWindow,
		DrainConcurrency:         o.DrainConcurrency,
		Presence:                 pres,
		PresenceInterval:         o.PresenceInterval,
		UserPresence:             o.Presence || o.ClusterMaxSockets > 0,
		ClusterMaxSocketsPerUser: o.ClusterMaxSockets,
		ClusterCapPolicy:         capPolicy(o.ClusterCapPolicy),
		Rebalance:                o.Rebalance && (o.RedisURL != "" || o.RedisCluster != ""),
		RebalanceMargin:          o.RebalanceMargin,
		RebalanceRate:            o.RebalanceRate,
		Logger:                   log,
		Registerer:               reg,
		Gatherer:                 mainGatherer(o, reg),
	})
	if err != nil {
		return err
	}

	ln, err := listen("tcp", o.Addr)
	if err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	handler := gw.Handler()
	if o.Dev {
		handler = devHandler(o, gw, handler)
	}
	served := make(chan error, 1)
	metrics, err := serveMetrics(o.MetricsAddr, reg, served)
	if err != nil {
		ln.Close()
		gw.Shutdown(context.Background())
		return err
	}
	defer metrics.Close()
	go func() { served <- gw.Serve(ln, handler) }()
	log.Info("herald listening", zap.String("addr", ln.Addr().String()), zap.String("metrics_addr", metrics.Addr()),
		zap.String("node_id", nodeID), zap.Bool("dev", o.Dev), zap.String("version", build.Version), zap.String("commit", build.Commit))

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("signal received: shutting down", zap.Duration("deadline", o.ShutdownTimeout))
	case serveErr = <-served:
		log.Error("server stopped", zap.Error(serveErr))
		if serveErr == nil { // Serve returns nil only after a Shutdown, which nobody called
			serveErr = errors.New("server stopped unexpectedly")
		}
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := gw.Shutdown(sctx); err != nil {
		log.Warn("shutdown", zap.Error(err))
	}
	log.Info("bye")
	return serveErr // non-nil: main exits 1
}

func authConfig(o *options) (auth.Config, error) {
	cfg := auth.Config{
		SessionJWKS:     o.SessionJWKS,
		SessionAlgs:     list(o.SessionAlgs),
		SessionIssuer:   o.SessionIssuer,
		SessionAudience: o.SessionAudience,
		UserClaim:       o.UserClaim,
		ClockSkew:       o.ClockSkew,
		WSTokenTTL:      o.WSTokenTTL,
	}
	if o.SessionSecret != "" {
		cfg.SessionSecret = []byte(o.SessionSecret)
	}
	if o.SessionPublicKey != "" {
		pem, err := os.ReadFile(o.SessionPublicKey)
		if err != nil {
			return cfg, fmt.Errorf("--session-public-key: %w", err)
		}
		cfg.SessionPublicKeyPEM = pem
	}
	switch {
	case o.WSTokenSecret != "":
		cfg.WSTokenSecret = []byte(o.WSTokenSecret)
	case o.RedisURL != "" || o.RedisCluster != "":
		return cfg, errors.New("--ws-token-secret (HERALD_WS_TOKEN_SECRET) is required with Redis: every replica must verify the tokens the others mint")
	}
	return cfg, nil
}

// newLogger builds the zap logger: JSON (or console) on stderr, sampled per
// message so that a connect storm cannot flood the log.
func newLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch strings.ToLower(format) {
	case "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	default:
		return nil, fmt.Errorf("--log-format %q: want json or console", format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)
	// The first 100 lines of each message per second are kept, then 1 in 100.
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core, zap.AddStacktrace(zapcore.ErrorLevel)), nil
}

// capPolicy maps --max-sockets-per-user-cluster-policy to the gateway's
// policy; "refuse" is the zero value, and gateway.New refuses an unknown one.
func capPolicy(flag string) gateway.CapPolicy {
	if flag == "refuse" {
		return gateway.CapRefuse
	}
	return gateway.CapPolicy(flag)
}
