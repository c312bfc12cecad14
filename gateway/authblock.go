package gateway

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Failed-authentication blocking. Every refused credential that a genuine
// client does not produce in its normal life (a forged or corrupt session
// or WS token, a reused WS token) counts against the client's IP, taken as
// it is logged: the right-most address that is not a trusted proxy. An IP
// that reaches the limit within the window is blocked for a while, on both
// the token endpoint (429 with Retry-After) and the socket handshake (4029
// after the upgrade). The block is logged once, when it starts.
//
// Not counted: expired sessions and tokens and missing sessions (every
// logged-out or sleeping browser produces them), origin refusals, rate
// limits and an unreachable jti store. Never counted or blocked: a client
// IP that is itself a trusted proxy (a proxy that sent no X-Forwarded-For),
// so that one bad client cannot shut out everyone behind the proxy.
//
// Counts live in this replica only: behind a load balancer spreading over N
// replicas, an address may cause up to N times the limit before every
// replica blocks it. No Redis-backed, cluster-wide count is offered.

// countedAuthFailures are the authFailed reasons that count towards a block.
var countedAuthFailures = map[string]bool{
	"invalid_session": true,
	"token_invalid":   true,
	"token_reused":    true,
	"rate_limited":    true, // 4029 and 429: pacing, the token rate
}

// maxTrackedIPs bounds the addresses the blocker remembers, blocked or
// counting. Past it, new addresses are not counted until old ones expire:
// memory stays bounded (about 100 bytes per address) at the price of not
// blocking during a flood of distinct addresses.
const maxTrackedIPs = 100_000

// authBlocker counts failed authentications per client IP and blocks IPs
// over the limit. Its methods are safe for concurrent use.
type authBlocker struct {
	limit   int           // failures within window that start a block; > 0
	window  time.Duration // counting window
	block   time.Duration // how long a block lasts
	trusted []netip.Prefix
	log     *zap.Logger

	blocks  prometheus.Counter // blocks started
	tracked prometheus.Gauge   // addresses remembered

	seed   maphash.Seed
	shards [64]blockShard
}

type blockShard struct {
	mu    sync.Mutex
	ips   map[string]*ipRecord // guarded by mu; at most maxTrackedIPs/len(shards) entries
	swept time.Time            // last sweep of this shard; guarded by mu
}

// ipRecord is one address' state; guarded by its shard's mu.
type ipRecord struct {
	windowStart time.Time // start of the current counting window
	failures    int       // in the current window
	until       time.Time // end of the block; zero when not blocked
}

// newAuthBlocker returns nil when limit is not positive: blocking is off.
func newAuthBlocker(limit int, window, block time.Duration, trusted []netip.Prefix, log *zap.Logger, reg prometheus.Registerer) (*authBlocker, error) {
	if limit <= 0 {
		return nil, nil
	}
	b := &authBlocker{
		limit: limit, window: window, block: block, trusted: trusted, log: log,
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_auth_blocks_total", Help: "Client IPs blocked for repeated failed authentication.",
		}),
		tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_auth_block_tracked_ips", Help: "Client IPs the failed-authentication blocker remembers (counting or blocked).",
		}),
		seed: maphash.MakeSeed(),
	}
	for i := range b.shards {
		b.shards[i].ips = make(map[string]*ipRecord)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.blocks, b.tracked} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register auth blocker metrics: %w", err)
			}
		}
	}
	return b, nil
}

func (b *authBlocker) shard(ip string) *blockShard {
	return &b.shards[maphash.String(b.seed, ip)%uint64(len(b.shards))]
}

// exempt reports whether ip is never counted: unparsable, or a trusted
// proxy's own address.
func (b *authBlocker) exempt(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err != nil || isTrusted(a, b.trusted)
}

// blocked reports whether ip is blocked at now, and for how much longer.
func (b *authBlocker) blocked(ip string, now time.Time) (bool, time.Duration) {
	if b == nil || b.exempt(ip) {
		return false, 0
	}
	sh := b.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rec := sh.ips[ip]
	if rec == nil || !now.Before(rec.until) {
		return false, 0
	}
	return true, rec.until.Sub(now)
}

// failed counts one failed authentication of ip at now. It starts a block,
// and logs it, when the failure reaches the limit.
func (b *authBlocker) failed(ip string, now time.Time) {
	if b == nil || b.exempt(ip) {
		return
	}
	sh := b.shard(ip)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b.sweepLocked(sh, now)
	rec := sh.ips[ip]
	if rec == nil {
		if len(sh.ips) >= maxTrackedIPs/len(b.shards) {
			return
		}
		rec = &ipRecord{windowStart: now}
		sh.ips[ip] = rec
		b.tracked.Inc()
	}
	if now.Before(rec.until) {
		return // already blocked: nothing more to count
	}
	if now.Sub(rec.windowStart) >= b.window {
		rec.windowStart, rec.failures = now, 0
	}
	rec.failures++
	if rec.failures < b.limit {
		return
	}
	rec.until = now.Add(b.block)
	rec.windowStart, rec.failures = rec.until, 0
	b.blocks.Inc()
	b.log.Warn("auth block: client IP blocked after repeated failed authentication",
		zap.String("ip", ip),
		zap.Int("failures", b.limit),
		zap.Duration("window", b.window),
		zap.Duration("for", b.block),
	)
}

// sweepLocked forgets, at most once per window, the shard's addresses that
// are neither blocked nor counting in a live window.
func (b *authBlocker) sweepLocked(sh *blockShard, now time.Time) {
	if now.Sub(sh.swept) < b.window {
		return
	}
	sh.swept = now
	for ip, rec := range sh.ips {
		if !now.Before(rec.until) && now.Sub(rec.windowStart) >= b.window {
			delete(sh.ips, ip)
			b.tracked.Dec()
		}
	}
}
