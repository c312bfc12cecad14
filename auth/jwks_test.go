package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/goleak"

	"github.com/herald-gw/herald/internal/testenv"
)

func TestJWKSFile(t *testing.T) {
	k := keys(t)
	c := validClaims()
	// k1: RSA, no alg; k2: EC with alg ES256; k3: RSA pinned by the JWK to
	// RS384; k4: RSA for encryption only.
	doc := jwksJSON(t,
		[]any{&k.rsa.PublicKey, &k.ec.PublicKey, &k.rsa2.PublicKey, &k.rsa2.PublicKey},
		[]string{"k1", "k2", "k3", "k4"},
		[]string{"", "ES256", "RS384", ""})
	doc = []byte(strings.Replace(string(doc), `"kid":"k4"`, `"kid":"k4","use":"enc"`, 1))
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, Config{SessionJWKS: path, SessionAlgs: []string{"RS256", "ES256"}, Now: fixedNow(t0)})

	cases := []struct {
		name    string
		why     string
		tok     string
		wantErr error
	}{
		{name: "RS256 by kid", why: "k1 is RSA without its own alg",
			tok: sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k1"}, c)},
		{name: "ES256 by kid", why: "k2 is EC with alg ES256",
			tok: sign(t, jwa.ES256, k.ec, map[string]any{"kid": "k2"}, c)},
		{name: "no kid", why: "every key of the set is tried",
			tok: sign(t, jwa.ES256, k.ec, nil, c)},
		{name: "kid of another key", why: "the key is picked by kid",
			tok: sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k2"}, c), wantErr: ErrSessionInvalid},
		{name: "unknown kid", why: "a file is not refreshed",
			tok: sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k9"}, c), wantErr: ErrSessionInvalid},
		{name: "JWK alg not pinned", why: "k3 says RS384, which is not pinned: it is skipped",
			tok: sign(t, jwa.RS256, k.rsa2, map[string]any{"kid": "k3"}, c), wantErr: ErrSessionInvalid},
		{name: "use enc", why: "k4 is not a signature key",
			tok: sign(t, jwa.RS256, k.rsa2, map[string]any{"kid": "k4"}, c), wantErr: ErrSessionInvalid},
		{name: "ES256 under an RSA kid", why: "k1 is offered only with RS256",
			tok: sign(t, jwa.ES256, k.ec, map[string]any{"kid": "k1"}, c), wantErr: ErrSessionInvalid},
		{name: "HS256 with the JWKS text as secret", why: "key confusion: HS256 is not pinned",
			tok: sign(t, jwa.HS256, doc, map[string]any{"kid": "k1"}, c), wantErr: ErrSessionInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.VerifySession(context.Background(), tc.tok)
			t.Logf("%s: got %q, %v", tc.why, got, err)
			checkErr(t, err, tc.wantErr, tc.tok)
			if tc.wantErr == nil && got != "42" {
				t.Fatalf("user id: got %q, want \"42\" (%s)", got, tc.why)
			}
		})
	}
}

func TestJWKSFileJWKAlgMustMatch(t *testing.T) {
	k := keys(t)
	// The only key says RS384 while RS256 is pinned: nothing is usable.
	doc := jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, []string{"RS384"})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(context.Background(), Config{SessionJWKS: path, SessionAlgs: []string{"RS256"}})
	if err == nil || !strings.Contains(err.Error(), `its alg "RS384" is not pinned`) {
		t.Fatalf("New: got %v, want an error saying the JWK's alg is not pinned", err)
	}
}

// jwksServer serves a JWKS document that a test can replace, and counts
// fetches.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    []byte
	status int
	hits   atomic.Int32
	// gate, when set, holds every response until it is closed or the
	// request is cancelled.
	gate atomic.Pointer[chan struct{}]
}

func newJWKSServer(t *testing.T, doc []byte) *jwksServer {
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if g := s.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-r.Context().Done():
				return
			}
		}
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate test makes TLS noise
	s.StartTLS()
	return s
}

func (s *jwksServer) serve(doc []byte, status int) {
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

func TestJWKSURLRotation(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keys(t)
	c := validClaims()
	srv := newJWKSServer(t, jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil))
	defer srv.Close()
	clock := newClock(t0)
	a, err := New(context.Background(), Config{
		SessionJWKS: srv.URL + "/.well-known/jwks.json",
		SessionAlgs: []string{"RS256", "ES256"},
		HTTPClient:  srv.Client(),
		Now:         clock.Now,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer a.Close()
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("fetches after New: got %d, want 1", got)
	}

	verify := func(step, tok string, wantErr error, wantHits int32) {
		t.Helper()
		got, err := a.VerifySession(context.Background(), tok)
		if wantErr == nil && (err != nil || got != "42") {
			t.Fatalf("%s: got %q, %v; want \"42\", nil", step, got, err)
		}
		if wantErr != nil {
			checkErr(t, err, wantErr, tok)
		}
		if got := srv.hits.Load(); got != wantHits {
			t.Fatalf("%s: fetches: got %d, want %d", step, got, wantHits)
		}
	}
	k1 := sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k1"}, c)
	k2 := sign(t, jwa.ES256, k.ec, map[string]any{"kid": "k2"}, c)
	k3 := sign(t, jwa.ES256, k.ec2, map[string]any{"kid": "k3"}, c)

	verify("k1 from the initial fetch", k1, nil, 1)
	verify("k1 again: no fetch", k1, nil, 1)

	// The issuer rotates: k2 replaces k1.
	srv.serve(jwksJSON(t, []any{&k.ec.PublicKey}, []string{"k2"}, nil), http.StatusOK)
	verify("k2 forces a refresh and verifies", k2, nil, 2)
	verify("k1 was removed by the refresh", k1, ErrSessionInvalid, 2)
	verify("k3 within the forced-refresh gap: no fetch", k3, ErrSessionInvalid, 2)

	clock.Add(JWKSForcedRefreshGap)
	verify("k3 after the gap: one fetch, still unknown", k3, ErrSessionInvalid, 3)

	// A failing refresh keeps the previous keys.
	clock.Add(JWKSForcedRefreshGap)
	srv.serve([]byte("oops"), http.StatusInternalServerError)
	verify("k3 while the server fails: one fetch", k3, ErrSessionInvalid, 4)
	verify("k2 still verifies", k2, nil, 4)

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	clock.Add(JWKSForcedRefreshGap)
	verify("after Close: keys kept, no fetch", k2, nil, 4)
	verify("after Close: unknown kid, no fetch", k3, ErrSessionInvalid, 4)
}

func TestJWKSURLConcurrentUnknownKid(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil))
	defer srv.Close()
	a, err := New(context.Background(), Config{
		SessionJWKS: srv.URL, SessionAlgs: []string{"RS256", "ES256"},
		HTTPClient: srv.Client(), Now: fixedNow(t0),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer a.Close()
	srv.serve(jwksJSON(t, []any{&k.rsa.PublicKey, &k.ec.PublicKey}, []string{"k1", "k2"}, nil), http.StatusOK)
	tok := sign(t, jwa.ES256, k.ec, map[string]any{"kid": "k2"}, validClaims())

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.VerifySession(context.Background(), tok)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("VerifySession: got %v, want success", err)
		}
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("fetches: got %d, want 2 (the initial one and one forced refresh shared by all callers)", got)
	}
}

func TestJWKSURLStartFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keys(t)
	good := jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil)

	t.Run("server error", func(t *testing.T) {
		srv := newJWKSServer(t, nil)
		defer srv.Close()
		srv.serve([]byte("no"), http.StatusInternalServerError)
		_, err := New(context.Background(), Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}, HTTPClient: srv.Client()})
		if err == nil || !strings.Contains(err.Error(), "500") {
			t.Fatalf("New: got %v, want an error naming the 500 status", err)
		}
	})
	t.Run("no usable key", func(t *testing.T) {
		srv := newJWKSServer(t, good)
		defer srv.Close()
		_, err := New(context.Background(), Config{SessionJWKS: srv.URL, SessionAlgs: []string{"ES256"}, HTTPClient: srv.Client()})
		if err == nil || !strings.Contains(err.Error(), "no key usable") {
			t.Fatalf("New: got %v, want an error saying no key is usable", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := newJWKSServer(t, good)
		defer srv.Close()
		_, err := New(context.Background(), Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("New with the default client: got %v, want a certificate error", err)
		}
	})
	t.Run("redirect to http", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.RedirectHandler("http://127.0.0.1:1/jwks.json", http.StatusFound))
		defer srv.Close()
		_, err := New(context.Background(), Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}, HTTPClient: srv.Client()})
		if err == nil || !strings.Contains(err.Error(), `redirect to a "http" URL refused`) {
			t.Fatalf("New: got %v, want the redirect refused", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		srv := newJWKSServer(t, []byte(strings.Repeat(" ", MaxJWKSBytes+1)))
		defer srv.Close()
		_, err := New(context.Background(), Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}, HTTPClient: srv.Client()})
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("New: got %v, want a size error", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		srv := newJWKSServer(t, good)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := New(ctx, Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}, HTTPClient: srv.Client()})
		if err == nil {
			t.Fatalf("New with a cancelled context: got no error, want one")
		}
	})
}

// TestJWKSURLContextEndsRefresh checks that cancelling New's context stops
// the refresher even before Close.
func TestJWKSURLContextEndsRefresh(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256"}, HTTPClient: srv.Client(), Now: fixedNow(t0)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cancel()
	// Verification keeps working with the keys already fetched, and an
	// unknown kid does not hang on a refresher that is gone.
	done := make(chan error, 1)
	go func() {
		_, err := a.VerifySession(context.Background(), sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k9"}, validClaims()))
		done <- err
	}()
	select {
	case err := <-done:
		checkErr(t, err, ErrSessionInvalid, "")
	case <-time.After(5 * time.Second):
		t.Fatal("VerifySession with an unknown kid hung after the context was cancelled")
	}
	if _, err := a.VerifySession(context.Background(), sign(t, jwa.RS256, k.rsa, map[string]any{"kid": "k1"}, validClaims())); err != nil {
		t.Fatalf("VerifySession after cancel: %v", err)
	}
	a.Close()
}

// TestJWKSURLBackgroundRefresh shortens the refresh interval to show that
// the cache refreshes on its own, and that forced refreshes do not add
// refresh schedules (httprc v1 adds one per (*Cache).Refresh).
func TestJWKSURLBackgroundRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for background refreshes")
	}
	defer goleak.VerifyNone(t)
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil))
	defer srv.Close()
	clock := newClock(t0)
	s, err := Config{SessionJWKS: srv.URL, SessionAlgs: []string{"RS256", "ES256"}, HTTPClient: srv.Client(), Now: clock.Now}.
		withDefaults().validate()
	if err != nil {
		t.Fatal(err)
	}
	s.jwksRefresh, s.jwksWindow = time.Second, time.Second
	a, err := newAuthenticator(context.Background(), s)
	if err != nil {
		t.Fatalf("newAuthenticator: %v", err)
	}
	defer a.Close()

	// The issuer adds k2; the background refresh finds it without any token
	// asking for it.
	srv.serve(jwksJSON(t, []any{&k.rsa.PublicKey, &k.ec.PublicKey}, []string{"k1", "k2"}, nil), http.StatusOK)
	testenv.Eventually(t, 10*time.Second, func() error {
		if len(a.jwks.keys.Load().byKid["k2"]) == 0 {
			return fmt.Errorf("k2 not picked up by the background refresh (%d fetches)", srv.hits.Load())
		}
		return nil
	})

	// Five forced refreshes; then the cache's queue must still hold one
	// fetch schedule, not six (read from the queue, not by counting
	// background fetches over a few seconds).
	unknown := sign(t, jwa.ES256, k.ec2, map[string]any{"kid": "k9"}, validClaims())
	for range 5 {
		clock.Add(JWKSForcedRefreshGap)
		before := srv.hits.Load()
		_, err := a.VerifySession(context.Background(), unknown)
		checkErr(t, err, ErrSessionInvalid, unknown)
		if got := srv.hits.Load(); got < before+1 {
			t.Fatalf("unknown kid after the gap: fetches went from %d to %d, want a forced fetch", before, got)
		}
	}
	// Each (*Cache).Refresh would have queued one more schedule at once,
	// due a second later: the queue holds at most the one schedule.
	if n := scheduledFetches(t, a.jwks.cache); n > 1 {
		t.Fatalf("%d fetch schedules queued after 5 forced refreshes; want at most 1 (forced refreshes must not add schedules)", n)
	}
}

// scheduledFetches returns how many fetches the jwk.Cache's queue holds. It
// reads httprc v1's queue through reflection (the count is not exported);
// the queue's MarshalJSON takes the queue's lock.
func scheduledFetches(t *testing.T, c *jwk.Cache) int {
	t.Helper()
	field := func(v reflect.Value, name string) reflect.Value {
		f := v.Elem().FieldByName(name)
		if !f.IsValid() {
			t.Fatalf("%s has no field %q: the cache's layout changed (jwx %s)", v.Type(), name, "v2/httprc v1")
		}
		return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	}
	q, ok := field(field(reflect.ValueOf(c), "cache"), "queue").Interface().(json.Marshaler)
	if !ok {
		t.Fatal("the cache's queue does not marshal its schedule")
	}
	b, err := q.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var sched struct {
		List []struct {
			URL string `json:"url"`
		} `json:"list"`
	}
	if err := json.Unmarshal(b, &sched); err != nil {
		t.Fatalf("queue %s: %v", b, err)
	}
	return len(sched.List)
}

// TestJWKSForcedRefreshDetached: a token with an unknown kid forces a JWKS
// fetch; the client disconnecting (its context cancelled) must not cancel
// that fetch, or the rotated key would wait for the background refresh
// while forced refreshes stay blocked for JWKSForcedRefreshGap.
func TestJWKSForcedRefreshDetached(t *testing.T) {
	defer goleak.VerifyNone(t)
	k := keys(t)
	srv := newJWKSServer(t, jwksJSON(t, []any{&k.rsa.PublicKey}, []string{"k1"}, nil))
	defer srv.Close()
	a, err := New(context.Background(), Config{
		SessionJWKS: srv.URL, SessionAlgs: []string{"RS256", "ES256"},
		HTTPClient: srv.Client(), Now: fixedNow(t0), // the gap never passes
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer a.Close()
	gate := make(chan struct{})
	srv.gate.Store(&gate)
	srv.serve(jwksJSON(t, []any{&k.ec.PublicKey}, []string{"k2"}, nil), http.StatusOK)
	tok := sign(t, jwa.ES256, k.ec, map[string]any{"kid": "k2"}, validClaims())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.VerifySession(ctx, tok)
		done <- err
	}()
	testenv.Eventually(t, 5*time.Second, func() error {
		if srv.hits.Load() < 2 {
			return errors.New("the unknown kid forced no fetch")
		}
		return nil
	})
	cancel() // the client went away while the fetch was in flight
	if err := <-done; err == nil {
		t.Fatal("VerifySession with a cancelled context succeeded before the fetch ended")
	}
	close(gate)

	testenv.Eventually(t, 5*time.Second, func() error {
		if _, err := a.VerifySession(context.Background(), tok); err != nil {
			return fmt.Errorf("rotated key still refused after the forced fetch was free to finish: %v (fetches: %d)", err, srv.hits.Load())
		}
		return nil
	})
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("fetches: got %d, want 2 (the initial one and one forced refresh)", got)
	}
}
