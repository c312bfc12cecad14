package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/internal/redact"
)

// The three Redis modes:
//
//	--redis-url redis://[:password@]host:6379/0          one Redis (rediss:// for TLS)
//	--redis-url redis-sentinel://[:password@]h1:26379,h2:26379/mymaster[/db][?sentinel_password=…]
//	--redis-cluster h1:6379,h2:6379                      Redis Cluster (or redis://[:password@]h1:6379,h2:6379)
//
// A Sentinel URL names the sentinels and the master set; its password is the
// data nodes'. rediss-sentinel:// uses TLS to the data nodes and sentinels.

// redisDialTimeout bounds a connection attempt in every mode.
const redisDialTimeout = 2 * time.Second

// newRedisClient returns the client of the configured mode: a
// *redis.ClusterClient for --redis-cluster, else a *redis.Client (a
// failover client for a Sentinel URL). No command is retried by the
// client (MaxRetries -1 in every mode; see redisOptions).
func newRedisClient(o *options) (redis.UniversalClient, error) {
	switch {
	case o.RedisURL != "" && o.RedisCluster != "":
		return nil, errors.New("--redis-url and --redis-cluster (HERALD_REDIS_URL, HERALD_REDIS_CLUSTER) are both set; give one")
	case o.RedisCluster != "":
		copts, err := parseClusterAddrs(o.RedisCluster)
		if err != nil {
			return nil, fmt.Errorf("--redis-cluster: %w", err)
		}
		return redis.NewClusterClient(copts), nil
	case isSentinelURL(o.RedisURL):
		fopts, err := parseSentinelURL(o.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		return redis.NewFailoverClient(fopts), nil
	}
	ropts, err := redisOptions(o.RedisURL)
	if err != nil {
		return nil, err
	}
	return redis.NewClient(ropts), nil
}

// redisOptions turns a single-server --redis-url into the client options
// herald runs with.
//
// Retries are decided per command, never by the client: MaxRetries is -1
// (in go-redis, 0 means "the default, 3"), as in the other modes. The jti
// store retries its script itself, safely (a nonce recognises its own
// earlier write); PUBLISH and the inbox append are never retried; the
// broker's pub/sub connection reconnects and resubscribes in its own loop;
// a PING for /readyz is simply asked again at the next probe. Nothing is
// sent twice blindly after a connection dropped with the command already
// run.
func redisOptions(rawURL string) (*redis.Options, error) {
	ropts, err := redis.ParseURL(rawURL)
	if err != nil {
		// ParseURL's error quotes the URL, password included.
		return nil, fmt.Errorf("--redis-url %s: %w", redact.URL(rawURL), redact.Error(err, rawURL))
	}
	ropts.ContextTimeoutEnabled = true
	ropts.MaxRetries = -1
	ropts.DialTimeout = redisDialTimeout
	return ropts, nil
}

// redisMode describes the configured Redis for the log, without secrets.
func redisMode(o *options) string {
	if o.RedisCluster != "" {
		_, hosts, _, _, _ := splitRedisURL(o.RedisCluster)
		return "cluster " + strings.Join(hosts, ",")
	}
	scheme, hosts, path, _, _ := splitRedisURL(o.RedisURL)
	if isSentinelURL(o.RedisURL) {
		return "sentinel " + strings.Join(hosts, ",") + " master " + strings.Trim(path, "/")
	}
	return scheme + "://" + strings.Join(hosts, ",") + path
}

func isSentinelURL(s string) bool {
	return strings.HasPrefix(s, "redis-sentinel://") || strings.HasPrefix(s, "rediss-sentinel://")
}

// splitRedisURL splits "scheme://[user[:password]@]h1:p1,h2:p2/path?query"
// (the scheme is optional for a bare host list). url.Parse refuses the
// comma-separated host list, hence the hand parsing.
func splitRedisURL(s string) (scheme string, hosts []string, path string, user *url.Userinfo, query url.Values) {
	rest := s
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme, rest = rest[:i], rest[i+3:]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		query, _ = url.ParseQuery(rest[i+1:])
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		path, rest = rest[i:], rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		info := rest[:i]
		rest = rest[i+1:]
		name, pass, hasPass := strings.Cut(info, ":")
		name, _ = url.PathUnescape(name)
		pass, _ = url.PathUnescape(pass)
		if hasPass {
			user = url.UserPassword(name, pass)
		} else {
			user = url.User(name)
		}
	}
	for _, h := range strings.Split(rest, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return scheme, hosts, path, user, query
}

func checkHosts(hosts []string) error {
	if len(hosts) == 0 {
		return errors.New("no host:port given")
	}
	for _, h := range hosts {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return fmt.Errorf("%q: want host:port", h)
		}
	}
	return nil
}

func credentials(user *url.Userinfo) (name, password string) {
	if user == nil {
		return "", ""
	}
	p, _ := user.Password()
	return user.Username(), p
}

// parseClusterAddrs parses --redis-cluster.
func parseClusterAddrs(s string) (*redis.ClusterOptions, error) {
	scheme, hosts, path, user, _ := splitRedisURL(s)
	if scheme != "" && scheme != "redis" && scheme != "rediss" {
		return nil, fmt.Errorf("scheme %q: want host:port,… or redis[s]://host:port,…", scheme)
	}
	if path != "" && path != "/" && path != "/0" {
		return nil, errors.New("a Redis Cluster has only database 0")
	}
	if err := checkHosts(hosts); err != nil {
		return nil, err
	}
	name, pass := credentials(user)
	o := &redis.ClusterOptions{
		Addrs:                 hosts,
		Username:              name,
		Password:              pass,
		DialTimeout:           redisDialTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // none; MOVED and ASK redirections are still followed
		// A refused connection does not make go-redis re-read the slot map;
		// only its age does (60s by default). After a master dies, jti
		// checks for its slots fail (closed) until the next read.
		ClusterStateReloadInterval: time.Second,
	}
	if scheme == "rediss" {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// parseSentinelURL parses
// redis-sentinel://[[user]:password@]h1:26379,h2:26379/<master>[/<db>][?sentinel_password=…&sentinel_username=…].
func parseSentinelURL(s string) (*redis.FailoverOptions, error) {
	scheme, hosts, path, user, query := splitRedisURL(s)
	if err := checkHosts(hosts); err != nil {
		return nil, err
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return nil, errors.New("want redis-sentinel://host:26379,…/<master name>[/<db>]")
	}
	db := 0
	if len(parts) == 2 {
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("database %q: want a number", parts[1])
		}
		db = n
	}
	for k := range query {
		if k != "sentinel_password" && k != "sentinel_username" {
			return nil, fmt.Errorf("unknown parameter %q (known: sentinel_password, sentinel_username)", k)
		}
	}
	name, pass := credentials(user)
	o := &redis.FailoverOptions{
		MasterName:            parts[0],
		SentinelAddrs:         hosts,
		SentinelUsername:      query.Get("sentinel_username"),
		SentinelPassword:      query.Get("sentinel_password"),
		Username:              name,
		Password:              pass,
		DB:                    db,
		DialTimeout:           redisDialTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
	}
	if scheme == "rediss-sentinel" {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return o, nil
}
