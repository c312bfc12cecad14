package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/internal/redact"
)

// loadJWKSFile reads and converts a JWKS file once.
func loadJWKSFile(path string, algs []jwa.SignatureAlgorithm, log *zap.Logger) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: session JWKS: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: session JWKS: %w", err)
	}
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("auth: session JWKS %s is larger than %d bytes", path, MaxJWKSBytes)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("auth: session JWKS %s: %w", path, err)
	}
	ks, skipped, err := buildJWKSKeySet(set, algs)
	if err != nil {
		return nil, fmt.Errorf("auth: session JWKS %s: %w", path, err)
	}
	for _, reason := range skipped {
		log.Warn("auth: session JWKS key skipped", zap.String("jwks", path), zap.String("reason", reason))
	}
	return ks, nil
}

// jwksSource holds the session keys of a JWKS URL. jwx's jwk.Cache fetches
// the URL in the background every JWKSRefreshInterval; each successful fetch
// is converted, by the cache's post-fetch hook, into an immutable keySet
// that verification reads without locking (it never calls the cache's Get,
// which waits while a fetch is in flight). A token whose kid is not in the
// set forces a fetch (fetchNow), at most once per JWKSForcedRefreshGap.
type jwksSource struct {
	url  string
	algs []jwa.SignatureAlgorithm
	log  *zap.Logger
	now  func() time.Time

	keys   atomic.Pointer[keySet] // written by postFetch; never nil once startJWKS returns
	kids   atomic.Pointer[string] // summary of the last set, to log changes only
	cache  *jwk.Cache
	fetch  *fetchClient
	life   context.Context // the cache's life; cancelled by close
	cancel context.CancelFunc

	forcedMu   sync.Mutex
	inflight   chan struct{}  // guarded by forcedMu; closed when the forced fetch in flight ends; nil when none
	lastForced time.Time      // guarded by forcedMu
	forcedWG   sync.WaitGroup // forced fetches running; Add only under forcedMu while life lasts
}

// startJWKS registers url with a new jwk.Cache, fetches it once, and leaves
// the cache refreshing it until ctx is cancelled or close is called.
func startJWKS(ctx context.Context, url string, s settings) (*jwksSource, error) {
	life, cancel := context.WithCancel(ctx)
	j := &jwksSource{
		url:    url,
		algs:   s.algs,
		log:    s.log,
		now:    s.now,
		life:   life,
		cancel: cancel,
		fetch:  newFetchClient(life, s.client),
	}
	j.cache = jwk.NewCache(life,
		jwk.WithRefreshWindow(s.jwksWindow),
		jwk.WithErrSink(jwksErrSink{j}),
	)
	err := j.cache.Register(url,
		jwk.WithHTTPClient(j.fetch),
		jwk.WithRefreshInterval(s.jwksRefresh),
		jwk.WithPostFetcher(jwk.PostFetchFunc(j.postFetch)),
	)
	if err == nil {
		// The first fetch also starts the cache's one refresh schedule.
		_, err = j.cache.Refresh(ctx, url)
	}
	if err != nil {
		j.close()
		return nil, fmt.Errorf("auth: session JWKS: %w", redact.Error(err, url))
	}
	return j, nil
}

// postFetch converts every JWKS the cache fetched. An error keeps the
// previous keys (and, at start, fails New).
func (j *jwksSource) postFetch(u string, set jwk.Set) (jwk.Set, error) {
	ks, skipped, err := buildJWKSKeySet(set, j.algs)
	if err != nil {
		return nil, err
	}
	j.keys.Store(ks)

	kids := make([]string, 0, len(ks.all))
	for _, k := range ks.all {
		kids = append(kids, fmt.Sprintf("%q", k.kid))
	}
	slices.Sort(kids)
	summary := strings.Join(kids, ",")
	if old := j.kids.Swap(&summary); old == nil || *old != summary {
		j.log.Info("auth: session JWKS loaded", zap.String("jwks", redact.URL(u)),
			zap.String("kids", summary), zap.Strings("skipped", skipped))
	}
	return set, nil
}

// candidates returns the keys for kid, forcing a refresh when kid is not in
// the current set.
func (j *jwksSource) candidates(ctx context.Context, kid string) []verifyKey {
	ks := j.keys.Load()
	if kid == "" {
		return ks.all
	}
	if keys := ks.byKid[kid]; len(keys) > 0 {
		return keys
	}
	return j.refreshFor(ctx, kid).byKid[kid]
}

// refreshFor fetches the JWKS again because kid is unknown, unless another
// caller did so meanwhile or the last forced fetch is too recent. The fetch
// runs detached from ctx, in its own goroutine bounded by the cache's life
// and JWKSFetchTimeout, and only one runs at a time (single flight): a
// caller that gives up (ctx done: the client disconnected) returns the
// current keys but does not cancel the fetch, so a rotated key cannot be
// kept out by clients that send an unknown kid and hang up.
func (j *jwksSource) refreshFor(ctx context.Context, kid string) *keySet {
	j.forcedMu.Lock()
	if ks := j.keys.Load(); len(ks.byKid[kid]) > 0 {
		j.forcedMu.Unlock()
		return ks
	}
	done := j.inflight
	if done == nil {
		now := j.now()
		if (!j.lastForced.IsZero() && now.Sub(j.lastForced) < JWKSForcedRefreshGap) || j.life.Err() != nil {
			j.forcedMu.Unlock()
			return j.keys.Load()
		}
		j.lastForced = now
		done = make(chan struct{})
		j.inflight = done
		j.forcedWG.Add(1)
		go j.forcedFetch(done, kid)
	}
	j.forcedMu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return j.keys.Load()
}

// forcedFetch runs one forced fetch for refreshFor and then closes done.
func (j *jwksSource) forcedFetch(done chan struct{}, kid string) {
	defer j.forcedWG.Done()
	if err := j.fetchNow(j.life); err != nil && j.life.Err() == nil {
		j.log.Warn("auth: session JWKS refresh for an unknown kid failed; keeping the previous keys",
			zap.String("jwks", redact.URL(j.url)), zap.String("kid", clip(kid)), zap.Error(err))
	}
	j.forcedMu.Lock()
	j.inflight = nil
	j.forcedMu.Unlock()
	close(done)
}

// fetchNow fetches the JWKS once and stores its keys. It deliberately
// bypasses jwk.Cache: in httprc v1 every (*Cache).Refresh adds one more
// periodic refresh of the URL to the cache's queue, so forced refreshes
// would multiply the background fetch rate without bound. (A background
// fetch that started before a forced one and ends after it may store the
// older set; the next forced or background fetch corrects that.)
func (j *jwksSource) fetchNow(ctx context.Context) error {
	res, body, err := j.fetch.fetch(ctx, j.url)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("non-200 response %q", res.Status)
	}
	set, err := jwk.Parse(body)
	if err != nil {
		return fmt.Errorf("parse JWKS: %w", err)
	}
	_, err = j.postFetch(j.url, set)
	return err
}

// close stops the cache and waits for a fetch in flight. Idempotent.
func (j *jwksSource) close() {
	j.fetch.close()
	j.forcedMu.Lock() // no forced fetch starts after this
	j.cancel()
	j.forcedMu.Unlock()
	j.fetch.wait()
	j.forcedWG.Wait()
}

// jwksErrSink logs background refresh failures.
type jwksErrSink struct{ j *jwksSource }

func (s jwksErrSink) Error(err error) {
	if s.j.life.Err() != nil {
		return // failures caused by Close are not news
	}
	s.j.log.Warn("auth: session JWKS refresh failed; keeping the previous keys",
		zap.String("jwks", redact.URL(s.j.url)), zap.Error(err))
}

// fetchClient is the jwk.HTTPClient given to jwk.Cache. jwx's interface has
// no context, so fetchClient adds one: each fetch is bounded by
// JWKSFetchTimeout and cancelled by Close, and Close waits for it. It reads
// the whole body (at most MaxJWKSBytes) and closes it, so that no response
// is left open whatever the cache does with it, and it refuses redirects to
// non-https URLs.
type fetchClient struct {
	life   context.Context
	client *http.Client

	mu       sync.Mutex
	closed   bool           // guarded by mu
	inflight sync.WaitGroup // Add only under mu while !closed
}

func newFetchClient(life context.Context, c *http.Client) *fetchClient {
	cp := *c
	next := cp.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to a %q URL refused", req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &fetchClient{life: life, client: &cp}
}

// Get implements jwk.HTTPClient for the cache's background refresh.
func (f *fetchClient) Get(u string) (*http.Response, error) {
	res, body, err := f.fetch(f.life, u)
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	return res, nil
}

// fetch GETs u, bounded by ctx, JWKSFetchTimeout and Close, and returns the
// response (its body already read and closed) and the body.
func (f *fetchClient) fetch(ctx context.Context, u string) (*http.Response, []byte, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, nil, errors.New("authenticator closed")
	}
	f.inflight.Add(1)
	f.mu.Unlock()
	defer f.inflight.Done()

	ctx, cancel := context.WithTimeout(ctx, JWKSFetchTimeout)
	defer cancel()
	stop := context.AfterFunc(f.life, cancel)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read JWKS: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, nil, fmt.Errorf("JWKS is larger than %d bytes", MaxJWKSBytes)
	}
	res.Body = http.NoBody
	return res, body, nil
}

func (f *fetchClient) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
}

func (f *fetchClient) wait() { f.inflight.Wait() }
