package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

func TestNewRefuses(t *testing.T) {
	k := keys(t)
	rsaPEM := pemPublic(t, k.rsa)
	ecPEM := pemPublic(t, k.ec)
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	dir := t.TempDir()
	ecOnlyJWKS := filepath.Join(dir, "ec.json")
	if err := os.WriteFile(ecOnlyJWKS, jwksJSON(t, []any{&k.ec.PublicKey}, []string{"e1"}, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := secretOf(1, 64)

	cases := []struct {
		name string
		why  string
		cfg  Config
		want string // a substring of the error
	}{
		{
			name: "short HS256 secret",
			why:  "RFC 7518 §3.2: an HS256 key must be at least 256 bits",
			cfg:  Config{SessionSecret: []byte("twelve bytes")},
			want: "session secret is 12 bytes; HS256 needs at least 32 bytes (256 bits) of secret, see RFC 7518 §3.2",
		},
		{
			name: "HS512 with a 32-byte secret",
			why:  "the minimum follows the longest pinned hash",
			cfg:  Config{SessionSecret: secretOf(1, 32), SessionAlgs: []string{"HS256", "HS512"}},
			want: "session secret is 32 bytes; HS512 needs at least 64 bytes (512 bits)",
		},
		{
			name: "HS384 with a 47-byte secret",
			why:  "HS384 needs 48 bytes",
			cfg:  Config{SessionSecret: secretOf(1, 47), SessionAlgs: []string{"HS384"}},
			want: "HS384 needs at least 48 bytes (384 bits)",
		},
		{
			name: "short WS token secret",
			why:  "WS tokens are HS256 and shared by replicas",
			cfg:  Config{SessionSecret: secret, WSTokenSecret: []byte("sixteen bytes!!!")},
			want: "WS token secret is 16 bytes; HS256 needs at least 32 bytes (256 bits) of secret, see RFC 7518 §3.2",
		},
		{
			name: "unknown alg",
			why:  "only listed algorithms can be pinned",
			cfg:  Config{SessionSecret: secret, SessionAlgs: []string{"HS999"}},
			want: `unknown session alg "HS999"`,
		},
		{
			name: "alg names are case-sensitive",
			why:  "RFC 7518 names are case-sensitive; guessing could pin the wrong one",
			cfg:  Config{SessionSecret: secret, SessionAlgs: []string{"hs256"}},
			want: `unknown session alg "hs256"`,
		},
		{
			name: "alg none",
			why:  "unsigned tokens are never accepted",
			cfg:  Config{SessionSecret: secret, SessionAlgs: []string{"none"}},
			want: "unsigned tokens are never accepted",
		},
		{
			name: "HS and RS mixed",
			why:  "mixing kinds opens key confusion",
			cfg:  Config{SessionPublicKeyPEM: rsaPEM, SessionAlgs: []string{"HS256", "RS256"}},
			want: "mix HMAC (HS256) and public-key (RS256)",
		},
		{
			name: "no key source",
			why:  "a session key is required",
			cfg:  Config{},
			want: "no session key",
		},
		{
			name: "secret and JWKS",
			why:  "exactly one source",
			cfg:  Config{SessionSecret: secret, SessionJWKS: "https://example.test/jwks"},
			want: "a session secret and a session JWKS are given",
		},
		{
			name: "secret and public key",
			why:  "exactly one source",
			cfg:  Config{SessionSecret: secret, SessionPublicKeyPEM: rsaPEM, SessionAlgs: []string{"RS256"}},
			want: "a session secret and a session public key are given",
		},
		{
			name: "secret with RS256",
			why:  "an asymmetric alg needs a public key",
			cfg:  Config{SessionSecret: secret, SessionAlgs: []string{"RS256"}},
			want: "need a public key or a JWKS",
		},
		{
			name: "public key with default HS256",
			why:  "a public key must never be used as an HMAC secret",
			cfg:  Config{SessionPublicKeyPEM: rsaPEM},
			want: "a session public key is given but the session algs (HS256) are HMAC",
		},
		{
			name: "JWKS with HS256",
			why:  "a JWKS carries public keys",
			cfg:  Config{SessionJWKS: "https://example.test/jwks"},
			want: "a JWKS carries public keys",
		},
		{
			name: "RS256 with an EC key",
			why:  "the PEM key type must fit every pinned alg",
			cfg:  Config{SessionPublicKeyPEM: ecPEM, SessionAlgs: []string{"RS256"}},
			want: "session public key is an EC P-256 key, which cannot verify pinned alg RS256",
		},
		{
			name: "ES256 with a P-384 key",
			why:  "ES256 means P-256",
			cfg:  Config{SessionPublicKeyPEM: pemPublic(t, k.ec384), SessionAlgs: []string{"ES256"}},
			want: "an EC P-384 key, which cannot verify pinned alg ES256",
		},
		{
			name: "EdDSA with an RSA key",
			why:  "EdDSA needs Ed25519",
			cfg:  Config{SessionPublicKeyPEM: rsaPEM, SessionAlgs: []string{"EdDSA"}},
			want: "an RSA-2048 key, which cannot verify pinned alg EdDSA",
		},
		{
			name: "RSA 1024",
			why:  "RSA keys below 2048 bits are refused",
			cfg:  Config{SessionPublicKeyPEM: pemPublic(t, k.rsaSmall), SessionAlgs: []string{"RS256"}},
			want: "RSA key is 1024 bits; at least 2048 are required",
		},
		{
			name: "private key PEM",
			why:  "herald must not hold the signing key",
			cfg:  Config{SessionPublicKeyPEM: privPEM, SessionAlgs: []string{"ES256"}},
			want: "give herald only the public key",
		},
		{
			name: "not PEM",
			why:  "garbage is not a key",
			cfg:  Config{SessionPublicKeyPEM: []byte("hello"), SessionAlgs: []string{"ES256"}},
			want: "no PEM block found",
		},
		{
			name: "two PEM blocks",
			why:  "one key only; several keys belong in a JWKS",
			cfg:  Config{SessionPublicKeyPEM: append(append([]byte{}, ecPEM...), ecPEM...), SessionAlgs: []string{"ES256"}},
			want: "more than one PEM block",
		},
		{
			name: "http JWKS URL",
			why:  "keys fetched in clear text could be swapped",
			cfg:  Config{SessionJWKS: "http://example.test/jwks", SessionAlgs: []string{"RS256"}},
			want: `scheme is "http"; only https is accepted`,
		},
		{
			name: "missing JWKS file",
			why:  "a JWKS file is read at New",
			cfg:  Config{SessionJWKS: filepath.Join(dir, "nope.json"), SessionAlgs: []string{"RS256"}},
			want: "no such file",
		},
		{
			name: "JWKS file without a usable key",
			why:  "an EC-only set cannot verify RS256",
			cfg:  Config{SessionJWKS: ecOnlyJWKS, SessionAlgs: []string{"RS256"}},
			want: "no key usable with the pinned algs",
		},
		{
			name: "negative clock skew",
			why:  "skew is a tolerance",
			cfg:  Config{SessionSecret: secret, ClockSkew: -time.Second},
			want: "clock skew -1s is outside",
		},
		{
			name: "huge clock skew",
			why:  "would keep expired tokens alive",
			cfg:  Config{SessionSecret: secret, ClockSkew: time.Hour},
			want: "clock skew 1h0m0s is outside",
		},
		{
			name: "fractional WS TTL",
			why:  "JWT times are whole seconds and expires_in is an integer",
			cfg:  Config{SessionSecret: secret, WSTokenTTL: 1500 * time.Millisecond},
			want: "not a whole number of seconds",
		},
		{
			name: "long WS TTL",
			why:  "a WS token in a URL must be short-lived",
			cfg:  Config{SessionSecret: secret, WSTokenTTL: time.Hour},
			want: "WS token TTL 1h0m0s is outside",
		},
		{
			name: "session audience herald-ws",
			why:  "that audience marks WS tokens",
			cfg:  Config{SessionSecret: secret, SessionAudience: "herald-ws"},
			want: "reserved for WS tokens",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(context.Background(), tc.cfg)
			if err == nil {
				a.Close()
				t.Fatalf("New: got no error, want one containing %q (%s)", tc.want, tc.why)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got error %q, want one containing %q (%s)", err, tc.want, tc.why)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	a := mustNew(t, Config{SessionSecret: secretOf(1, 32)})
	if got, want := a.ClockSkew(), DefaultClockSkew; got != want {
		t.Errorf("ClockSkew: got %s, want %s", got, want)
	}
	if got := a.algs; len(got) != 1 || got[0] != jwa.HS256 {
		t.Errorf("pinned algs: got %v, want [HS256]", got)
	}
	if got, want := a.userClaim, "sub"; got != want {
		t.Errorf("user claim: got %q, want %q", got, want)
	}
	if got, want := len(a.ws.secret), MinWSTokenSecret; got != want {
		t.Errorf("random WS secret: got %d bytes, want %d", got, want)
	}
	_, ttl, err := a.MintWSToken("42")
	if err != nil {
		t.Fatalf("MintWSToken: %v", err)
	}
	if ttl != DefaultWSTokenTTL {
		t.Errorf("WS TTL: got %s, want %s", ttl, DefaultWSTokenTTL)
	}

	// Two processes without a configured WS secret do not accept each
	// other's tokens.
	b := mustNew(t, Config{SessionSecret: secretOf(1, 32)})
	tok, _, err := a.MintWSToken("42")
	if err != nil {
		t.Fatalf("MintWSToken: %v", err)
	}
	if _, err := b.VerifyWSToken(tok); err == nil {
		t.Errorf("VerifyWSToken on another process with a random secret: got no error, want ErrTokenInvalid")
	}
}

func TestNewCopiesSecrets(t *testing.T) {
	sess, ws := secretOf(1, 32), secretOf(2, 32)
	a := mustNew(t, Config{SessionSecret: sess, WSTokenSecret: ws, Now: fixedNow(t0)})
	tok := sign(t, "HS256", secretOf(1, 32), nil, validClaims())
	wsTok, _, err := a.MintWSToken("42")
	if err != nil {
		t.Fatal(err)
	}
	clear(sess) // the caller may wipe its copy
	clear(ws)
	if _, err := a.VerifySession(context.Background(), tok); err != nil {
		t.Errorf("VerifySession after the caller cleared its secret: got %v, want success", err)
	}
	if _, err := a.VerifyWSToken(wsTok); err != nil {
		t.Errorf("VerifyWSToken after the caller cleared its secret: got %v, want success", err)
	}
}
