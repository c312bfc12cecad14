package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"go.uber.org/goleak"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestMain fails the run if any goroutine outlives the tests (for example a
// JWKS refresher that Close did not stop).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fixed "now" of most tests.
var t0 = time.Unix(1_764_150_000, 0)

// newClock returns a settable clock for Config.Now.
func newClock(t time.Time) *testenv.Clock { return testenv.NewClock(t) }

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa      *rsa.PrivateKey
	rsa2     *rsa.PrivateKey
	rsaSmall *rsa.PrivateKey // 1024 bits, below MinRSABits
	ec       *ecdsa.PrivateKey
	ec2      *ecdsa.PrivateKey
	ec384    *ecdsa.PrivateKey
	ed       ed25519.PrivateKey
}

var keysOnce = sync.OnceValues(func() (*testKeys, error) {
	var k testKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsaSmall, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec2, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	return &k, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	k, err := keysOnce()
	if err != nil {
		t.Fatalf("generate test keys: %v", err)
	}
	return k
}

// pemPublic PEM-encodes the public half of a private key (PKIX).
func pemPublic(t testing.TB, priv any) []byte {
	t.Helper()
	var pub any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case ed25519.PrivateKey:
		pub = k.Public()
	default:
		t.Fatalf("pemPublic: %T", priv)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// secretOf returns n deterministic secret bytes, distinct per seed.
func secretOf(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7
	}
	return b
}

// claimsJSON marshals claims (a map, so keys come out sorted).
func claimsJSON(t testing.TB, c map[string]any) string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("marshal claims: %v", err)
	}
	return string(b)
}

// signJWS signs the exact payload bytes with jwx, adding hdr to the
// protected header (jwx sets alg from the key option).
func signJWS(t testing.TB, alg jwa.SignatureAlgorithm, key any, hdr map[string]any, payload string) string {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range hdr {
		if err := h.Set(k, v); err != nil {
			t.Fatalf("set header %s: %v", k, err)
		}
	}
	tok, err := jws.Sign([]byte(payload), jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return string(tok)
}

// sign is signJWS with claims as a map.
func sign(t testing.TB, alg jwa.SignatureAlgorithm, key any, hdr map[string]any, c map[string]any) string {
	t.Helper()
	return signJWS(t, alg, key, hdr, claimsJSON(t, c))
}

var b64 = base64.RawURLEncoding

// hsRaw builds a token from exact header and payload JSON, HS256-signed with
// secret (nil: an empty signature segment).
func hsRaw(secret []byte, header, payload string) string {
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
	if secret == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64.EncodeToString(m.Sum(nil))
}

// wsRaw builds a WS-shaped token (the exact header MintWSToken writes) with
// any payload, signed with secret.
func wsRaw(secret []byte, payload string) string { return hsRaw(secret, wsHeaderJSON, payload) }

// session claims valid at t0 for user "42".
func validClaims() map[string]any {
	return map[string]any{"sub": "42", "iat": t0.Unix() - 60, "exp": t0.Unix() + 3600}
}

// with returns a copy of c with the given changes; a nil value deletes.
func with(c map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// mustNew builds an Authenticator and closes it when the test ends.
func mustNew(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// hsConfig is an HS config with a 64-byte secret, valid for every HS alg.
func hsConfig(algs ...string) Config {
	return Config{SessionSecret: secretOf(1, 64), SessionAlgs: algs, Now: fixedNow(t0)}
}

// checkErr compares an error with the wanted sentinel (nil: no error) and
// checks that the error text does not leak the token.
func checkErr(t testing.TB, err, want error, token string) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("got error %v, want none", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("got error %v, want %v", err, want)
	}
	if err != nil && len(token) > 8 {
		msg := err.Error()
		for _, part := range append([]string{token}, strings.Split(token, ".")...) {
			if len(part) > 8 && strings.Contains(msg, part) {
				t.Fatalf("error %q contains (part of) the token", msg)
			}
		}
	}
}

// jwksJSON builds a JWKS document from public keys with the given kids and
// optional algs (parallel slices; "" means none).
func jwksJSON(t testing.TB, pubs []any, kids, algs []string) []byte {
	t.Helper()
	set := jwk.NewSet()
	for i, pub := range pubs {
		k, err := jwk.FromRaw(pub)
		if err != nil {
			t.Fatalf("jwk from %T: %v", pub, err)
		}
		if kids[i] != "" {
			_ = k.Set(jwk.KeyIDKey, kids[i])
		}
		if i < len(algs) && algs[i] != "" {
			_ = k.Set(jwk.AlgorithmKey, algs[i])
		}
		if err := set.AddKey(k); err != nil {
			t.Fatalf("add key: %v", err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("marshal JWKS: %v", err)
	}
	return b
}
