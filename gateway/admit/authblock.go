package admit

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
// or WS token, a reused WS token) counts against the client, taken as it is
// logged: the right-most address that is not a trusted proxy. An IPv4
// client is counted by its address, an IPv6 client by its network (the
// first AuthBlockIPv6Prefix bits, /64 by default: what one subscriber is
// given), so that rotating through one's own addresses does not evade the
// count. A client that reaches the limit within the window is blocked for a
// while, on both the token endpoint (429 with Retry-After) and the socket
// handshake (4029 after the upgrade). The block is logged once, when it
// starts.
//
// Not counted: expired sessions and tokens and missing sessions (every
// logged-out or sleeping browser produces them), origin refusals, rate
// limits and an unreachable jti store. Never counted or blocked: a client
// IP that is itself a trusted proxy (a proxy that sent no X-Forwarded-For),
// so that one bad client cannot shut out everyone behind the proxy. A
// forwarded address that does not parse is counted under its own text: it
// is never taken for the exempt proxy.
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

// maxTrackedIPs bounds the clients the blocker remembers, blocked or
// counting. Past it, each new client takes the place of the idlest one
// (the one whose last failure or blocked request is oldest): a flood of
// distinct addresses never turns blocking off, it only shortens how long
// an idle address is remembered. Memory stays bounded: about 110 bytes of
// heap per client, 11 MB when full (BenchmarkAuthBlockerMemory).
const maxTrackedIPs = 100_000

// DefaultAuthBlockIPv6Prefix is how many leading bits of an IPv6 address
// name one client for blocking.
const DefaultAuthBlockIPv6Prefix = 64

// blockKey names one client: an IPv4 address in its IPv4-mapped form, an
// IPv6 network (its first bits, the rest zero), or for a forwarded address
// that does not parse, a hash of its text in the discard-only 100::/64.
type blockKey [16]byte

// AuthBlocker counts failed authentications per client and blocks clients
// over the limit. Its methods are safe for concurrent use.
type AuthBlocker struct {
	limit   int           // failures within window that start a block; > 0
	window  time.Duration // counting window
	block   time.Duration // how long a block lasts
	v6Bits  int           // IPv6 prefix length that names a client
	trusted []netip.Prefix
	log     *zap.Logger

	blocks  prometheus.Counter // blocks started
	evicted prometheus.Counter // idle clients forgotten to make room
	tracked prometheus.Gauge   // clients remembered

	seed   maphash.Seed
	shards [64]blockShard
}

// perShardIPs is each shard's share of maxTrackedIPs.
const perShardIPs = maxTrackedIPs / 64

// blockShard holds its clients' records in one slice, linked from the most
// to the least recently active (head to tail), with the slots freed by
// sweeps linked from free. Indexes, not pointers: the garbage collector
// has nothing to scan.
type blockShard struct {
	mu         sync.Mutex
	idx        map[blockKey]int32 // guarded by mu; record of each client
	recs       []ipRecord         // guarded by mu; at most perShardIPs
	head, tail int32              // guarded by mu; -1 when empty
	free       int32              // guarded by mu; first free record, -1 when none
	swept      int64              // last sweep (unix ns); guarded by mu
}

// ipRecord is one client's state; guarded by its shard's mu.
type ipRecord struct {
	key         blockKey
	windowStart int64 // start of the current counting window (unix ns)
	until       int64 // end of the block (unix ns); 0 when not blocked
	failures    int32 // in the current window
	prev, next  int32 // neighbours in the activity list (or the free list)
}

// NewAuthBlocker returns nil when limit is not positive: blocking is off.
// v6Bits is the IPv6 prefix length that names a client; zero means
// DefaultAuthBlockIPv6Prefix.
func NewAuthBlocker(limit int, window, block time.Duration, v6Bits int, trusted []netip.Prefix, log *zap.Logger, reg prometheus.Registerer) (*AuthBlocker, error) {
	if limit <= 0 {
		return nil, nil
	}
	if v6Bits == 0 {
		v6Bits = DefaultAuthBlockIPv6Prefix
	}
	if v6Bits < 1 || v6Bits > 128 {
		return nil, fmt.Errorf("auth block IPv6 prefix /%d: want 1 to 128 bits", v6Bits)
	}
	b := &AuthBlocker{
		limit: limit, window: window, block: block, v6Bits: v6Bits, trusted: trusted, log: log,
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_auth_blocks_total", Help: "Client IPs blocked for repeated failed authentication.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_auth_block_evictions_total", Help: "Idle client IPs the failed-authentication blocker forgot to make room for new ones.",
		}),
		tracked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_auth_block_tracked_ips", Help: "Client IPs the failed-authentication blocker remembers (counting or blocked).",
		}),
		seed: maphash.MakeSeed(),
	}
	for i := range b.shards {
		sh := &b.shards[i]
		sh.idx = make(map[blockKey]int32)
		sh.head, sh.tail, sh.free = -1, -1, -1
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{b.blocks, b.evicted, b.tracked} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register auth blocker metrics: %w", err)
			}
		}
	}
	return b, nil
}

// key names the client ip belongs to; exempt reports a trusted proxy's own
// address, which is never counted.
func (b *AuthBlocker) key(ip string) (k blockKey, exempt bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		k[0] = 0x01 // 100::/64, whose addresses no client has
		h := maphash.String(b.seed, ip)
		for i := range 8 {
			k[8+i] = byte(h >> (8 * i))
		}
		return k, false
	}
	a = a.Unmap().WithZone("")
	if isTrusted(a, b.trusted) {
		return k, true
	}
	if a.Is6() {
		p, _ := a.Prefix(b.v6Bits)
		a = p.Addr()
	}
	return a.As16(), false
}

func (b *AuthBlocker) shard(k blockKey) *blockShard {
	return &b.shards[maphash.Comparable(b.seed, k)%uint64(len(b.shards))]
}

// Blocked reports whether ip is blocked at now, and for how much longer.
func (b *AuthBlocker) Blocked(ip string, now time.Time) (bool, time.Duration) {
	if b == nil {
		return false, 0
	}
	k, exempt := b.key(ip)
	if exempt {
		return false, 0
	}
	sh := b.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.idx[k]
	if !ok {
		return false, 0
	}
	rec := &sh.recs[i]
	if now.UnixNano() >= rec.until {
		return false, 0
	}
	sh.touchLocked(i) // a client still trying is not idle
	return true, time.Duration(rec.until - now.UnixNano())
}

// Failed counts one failed authentication of ip at now. It starts a block,
// and logs it, when the failure reaches the limit.
func (b *AuthBlocker) Failed(ip string, now time.Time) {
	if b == nil {
		return
	}
	k, exempt := b.key(ip)
	if exempt {
		return
	}
	t := now.UnixNano()
	sh := b.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b.sweepLocked(sh, t)
	i, ok := sh.idx[k]
	if !ok {
		i = b.insertLocked(sh, k, t)
	}
	sh.touchLocked(i)
	rec := &sh.recs[i]
	if t < rec.until {
		return // already blocked: nothing more to count
	}
	if t-rec.windowStart >= int64(b.window) {
		rec.windowStart, rec.failures = t, 0
	}
	rec.failures++
	if int(rec.failures) < b.limit {
		return
	}
	rec.until = t + int64(b.block)
	rec.windowStart, rec.failures = rec.until, 0
	b.blocks.Inc()
	b.log.Warn("auth block: client IP blocked after repeated failed authentication",
		zap.String("ip", ip),
		zap.Int("failures", b.limit),
		zap.Duration("window", b.window),
		zap.Duration("for", b.block),
	)
}

// insertLocked gives k a fresh record, taking a free slot, a new one, or
// when the shard is full the idlest client's.
func (b *AuthBlocker) insertLocked(sh *blockShard, k blockKey, now int64) int32 {
	var i int32
	switch {
	case sh.free >= 0:
		i = sh.free
		sh.free = sh.recs[i].next
	case len(sh.recs) < perShardIPs:
		if len(sh.recs) == cap(sh.recs) { // grow, never past the share
			recs := make([]ipRecord, len(sh.recs), min(perShardIPs, max(16, 2*cap(sh.recs))))
			copy(recs, sh.recs)
			sh.recs = recs
		}
		sh.recs = append(sh.recs, ipRecord{})
		i = int32(len(sh.recs) - 1)
	default:
		i = sh.tail
		sh.unlinkLocked(i)
		delete(sh.idx, sh.recs[i].key)
		b.evicted.Inc()
		b.tracked.Dec()
	}
	sh.recs[i] = ipRecord{key: k, windowStart: now, prev: -1, next: -1}
	sh.idx[k] = i
	sh.linkFrontLocked(i)
	b.tracked.Inc()
	return i
}

// sweepLocked forgets, at most once per window, the shard's clients that
// are neither blocked nor counting in a live window.
func (b *AuthBlocker) sweepLocked(sh *blockShard, now int64) {
	if now-sh.swept < int64(b.window) {
		return
	}
	sh.swept = now
	for k, i := range sh.idx {
		rec := &sh.recs[i]
		if now >= rec.until && now-rec.windowStart >= int64(b.window) {
			sh.unlinkLocked(i)
			delete(sh.idx, k)
			rec.next, sh.free = sh.free, i
			b.tracked.Dec()
		}
	}
}

// touchLocked makes record i the most recently active.
func (sh *blockShard) touchLocked(i int32) {
	if sh.head == i {
		return
	}
	sh.unlinkLocked(i)
	sh.linkFrontLocked(i)
}

func (sh *blockShard) linkFrontLocked(i int32) {
	r := &sh.recs[i]
	r.prev, r.next = -1, sh.head
	if sh.head >= 0 {
		sh.recs[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
}

func (sh *blockShard) unlinkLocked(i int32) {
	r := &sh.recs[i]
	if r.prev >= 0 {
		sh.recs[r.prev].next = r.next
	} else if sh.head == i {
		sh.head = r.next
	}
	if r.next >= 0 {
		sh.recs[r.next].prev = r.prev
	} else if sh.tail == i {
		sh.tail = r.prev
	}
	r.prev, r.next = -1, -1
}

// trackedLen returns how many clients the blocker remembers.
func (b *AuthBlocker) trackedLen() int {
	n := 0
	for i := range b.shards {
		b.shards[i].mu.Lock()
		n += len(b.shards[i].idx)
		b.shards[i].mu.Unlock()
	}
	return n
}

// Counted reports whether a refusal for reason (the handshake's and the
// token endpoint's authFailed reasons) counts towards a block.
func Counted(reason string) bool { return countedAuthFailures[reason] }
