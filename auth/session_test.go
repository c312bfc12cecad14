package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestVerifySession(t *testing.T) {
	k := keys(t)
	secret := secretOf(1, 64)
	other := secretOf(9, 64)
	rsaPEM := pemPublic(t, k.rsa)
	hs256 := hsConfig()
	rs256 := Config{SessionPublicKeyPEM: rsaPEM, SessionAlgs: []string{"RS256"}, Now: fixedNow(t0)}
	now := t0.Unix()
	c := validClaims()
	attackerJWK, err := jwk.FromRaw(&k.rsa2.PublicKey)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		why     string
		cfg     Config
		tok     string
		want    string // the user id, when wantErr is nil
		wantErr error
	}{
		// Valid tokens, one per supported key kind.
		{name: "HS256", why: "the default pinned alg",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, c), want: "42"},
		{name: "HS384", why: "pinned HS384 with a 64-byte secret",
			cfg: hsConfig("HS384"), tok: sign(t, jwa.HS384, secret, nil, c), want: "42"},
		{name: "HS512", why: "pinned HS512 with a 64-byte secret",
			cfg: hsConfig("HS512"), tok: sign(t, jwa.HS512, secret, nil, c), want: "42"},
		{name: "HS384 among several pinned", why: "any pinned HS alg verifies",
			cfg: hsConfig("HS256", "HS384"), tok: sign(t, jwa.HS384, secret, nil, c), want: "42"},
		{name: "RS256 via PEM", why: "an RSA public key",
			cfg: rs256, tok: sign(t, jwa.RS256, k.rsa, nil, c), want: "42"},
		{name: "PS256 via PEM", why: "RSA-PSS with the same key type",
			cfg: Config{SessionPublicKeyPEM: rsaPEM, SessionAlgs: []string{"PS256"}, Now: fixedNow(t0)},
			tok: sign(t, jwa.PS256, k.rsa, nil, c), want: "42"},
		{name: "ES256 via PEM", why: "an EC P-256 public key",
			cfg: Config{SessionPublicKeyPEM: pemPublic(t, k.ec), SessionAlgs: []string{"ES256"}, Now: fixedNow(t0)},
			tok: sign(t, jwa.ES256, k.ec, nil, c), want: "42"},
		{name: "EdDSA via PEM", why: "an Ed25519 public key",
			cfg: Config{SessionPublicKeyPEM: pemPublic(t, k.ed), SessionAlgs: []string{"EdDSA"}, Now: fixedNow(t0)},
			tok: sign(t, jwa.EdDSA, k.ed, nil, c), want: "42"},
		{name: "typ JWT and a kid", why: "ordinary session headers are fine; a single configured key ignores kid",
			cfg: rs256, tok: sign(t, jwa.RS256, k.rsa, map[string]any{"typ": "JWT", "kid": "whatever"}, c), want: "42"},

		// Times.
		{name: "expired", why: "exp an hour ago",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", now-3600)), wantErr: ErrSessionExpired},
		{name: "expired exactly at exp+skew", why: "exp+skew is the first refused instant",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", now-5)), wantErr: ErrSessionExpired},
		{name: "expired within skew", why: "exp 4s ago, skew 5s",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", now-4)), want: "42"},
		{name: "fractional exp", why: "NumericDate may have a fraction",
			cfg: hs256, tok: signJWS(t, jwa.HS256, secret, nil, `{"sub":"42","exp":1764153600.5}`), want: "42"},
		{name: "forged expired", why: "a bad signature is invalid even when exp has passed",
			cfg: hs256, tok: sign(t, jwa.HS256, other, nil, with(c, "exp", now-3600)), wantErr: ErrSessionInvalid},
		{name: "expired with a bad issuer", why: "expired is only reported when everything else is valid",
			cfg: Config{SessionSecret: secret, SessionIssuer: "https://app.example", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", now-3600, "iss", "https://evil.example")), wantErr: ErrSessionInvalid},
		{name: "missing exp", why: "exp is required",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", nil)), wantErr: ErrSessionInvalid},
		{name: "exp is a string", why: "NumericDate is a number",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", "9999999999")), wantErr: ErrSessionInvalid},
		{name: "negative exp", why: "out of range",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "exp", -1)), wantErr: ErrSessionInvalid},
		{name: "not yet valid", why: "nbf in an hour",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "nbf", now+3600)), wantErr: ErrSessionInvalid},
		{name: "nbf within skew", why: "nbf in 4s, skew 5s",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "nbf", now+4)), want: "42"},
		{name: "issued in the future", why: "iat in an hour",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "iat", now+3600)), wantErr: ErrSessionInvalid},
		{name: "no iat", why: "iat is optional",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "iat", nil)), want: "42"},

		// Issuer and audience.
		{name: "issuer matches", why: "configured iss",
			cfg: Config{SessionSecret: secret, SessionIssuer: "https://app.example", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "iss", "https://app.example")), want: "42"},
		{name: "wrong issuer", why: "configured iss differs",
			cfg: Config{SessionSecret: secret, SessionIssuer: "https://app.example", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "iss", "https://evil.example")), wantErr: ErrSessionInvalid},
		{name: "missing issuer", why: "configured iss absent",
			cfg: Config{SessionSecret: secret, SessionIssuer: "https://app.example", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, c), wantErr: ErrSessionInvalid},
		{name: "issuer not checked", why: "no configured iss",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "iss", "https://anyone.example")), want: "42"},
		{name: "audience string", why: "configured aud",
			cfg: Config{SessionSecret: secret, SessionAudience: "app", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "aud", "app")), want: "42"},
		{name: "audience in array", why: "aud may be an array",
			cfg: Config{SessionSecret: secret, SessionAudience: "app", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "aud", []string{"api", "app"})), want: "42"},
		{name: "wrong audience", why: "configured aud absent from the token",
			cfg: Config{SessionSecret: secret, SessionAudience: "app", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, with(c, "aud", []string{"api"})), wantErr: ErrSessionInvalid},
		{name: "missing audience", why: "configured aud, none in the token",
			cfg: Config{SessionSecret: secret, SessionAudience: "app", Now: fixedNow(t0)},
			tok: sign(t, jwa.HS256, secret, nil, c), wantErr: ErrSessionInvalid},
		{name: "audience of a wrong type", why: "aud is a string or strings",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "aud", 7)), wantErr: ErrSessionInvalid},

		// Algorithms.
		{name: "alg none", why: "unsigned tokens are never accepted",
			cfg: hs256, tok: hsRaw(nil, `{"alg":"none","typ":"JWT"}`, claimsJSON(t, c)), wantErr: ErrSessionInvalid},
		{name: "alg none with a signature", why: "none is refused whatever follows",
			cfg: hs256, tok: hsRaw(secret, `{"alg":"none"}`, claimsJSON(t, c)), wantErr: ErrSessionInvalid},
		{name: "no alg", why: "alg is required",
			cfg: hs256, tok: hsRaw(secret, `{"typ":"JWT"}`, claimsJSON(t, c)), wantErr: ErrSessionInvalid},
		{name: "HS256 signed with the RSA public key PEM", why: "classic key confusion: RS256 is pinned, so HS256 is refused",
			cfg: rs256, tok: sign(t, jwa.HS256, rsaPEM, nil, c), wantErr: ErrSessionInvalid},
		{name: "HMAC with the RSA PEM under an RS256 header", why: "the key is only ever used with RS256",
			cfg: rs256, tok: hsRawAlg(rsaPEM, "RS256", claimsJSON(t, c)), wantErr: ErrSessionInvalid},
		{name: "HS512 when only HS256 is pinned", why: "alg not pinned, even with the right secret",
			cfg: hs256, tok: sign(t, jwa.HS512, secret, nil, c), wantErr: ErrSessionInvalid},
		{name: "ES256 when RS256 is pinned", why: "alg not pinned",
			cfg: rs256, tok: sign(t, jwa.ES256, k.ec, nil, c), wantErr: ErrSessionInvalid},
		{name: "RS256 by another key", why: "signature does not verify",
			cfg: rs256, tok: sign(t, jwa.RS256, k.rsa2, nil, c), wantErr: ErrSessionInvalid},
		{name: "wrong secret", why: "signature does not verify",
			cfg: hs256, tok: sign(t, jwa.HS256, other, nil, c), wantErr: ErrSessionInvalid},
		{name: "tampered payload", why: "the signature covers the payload",
			cfg: hs256, tok: swapPayload(sign(t, jwa.HS256, secret, nil, c), claimsJSON(t, with(c, "sub", "1"))), wantErr: ErrSessionInvalid},
		{name: "embedded jwk header", why: "a key carried by the token is never trusted",
			cfg: rs256, tok: sign(t, jwa.RS256, k.rsa2, map[string]any{"jwk": attackerJWK}, c), wantErr: ErrSessionInvalid},
		{name: "jku header", why: "a key URL named by the token is never fetched",
			cfg: rs256, tok: sign(t, jwa.RS256, k.rsa2, map[string]any{"jku": "https://evil.example/jwks.json", "kid": "x"}, c), wantErr: ErrSessionInvalid},
		{name: "non-canonical base64", why: "same signature bytes, another spelling: one token has one spelling",
			cfg: hs256, tok: nonCanonical(t, sign(t, jwa.HS256, secret, nil, c)), wantErr: ErrSessionInvalid},
		{name: "crit header", why: "no extension is understood (RFC 7515 §4.1.11)",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, map[string]any{"crit": []string{"exp"}}, c), wantErr: ErrSessionInvalid},

		// Token kinds.
		{name: "typ herald-ws+jwt", why: "a WS token is never a session",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, map[string]any{"typ": "herald-ws+jwt"}, c), wantErr: ErrSessionInvalid},
		{name: "typ application/herald-ws+jwt", why: "typ is a media type, the prefix may be there",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, map[string]any{"typ": "Application/Herald-WS+JWT"}, c), wantErr: ErrSessionInvalid},
		{name: "aud herald-ws", why: "a WS audience is never a session",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "aud", []string{"app", "herald-ws"})), wantErr: ErrSessionInvalid},

		// Format.
		{name: "empty", why: "no session at all",
			cfg: hs256, tok: "", wantErr: ErrMissingSession},
		{name: "garbage", why: "not a JWS",
			cfg: hs256, tok: "not-a-token", wantErr: ErrSessionInvalid},
		{name: "four segments", why: "compact JWS has three",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, c) + ".x", wantErr: ErrSessionInvalid},
		{name: "JSON serialization", why: "only compact JWS is accepted",
			cfg: hs256, tok: `{"payload":"e30","signatures":[]}`, wantErr: ErrSessionInvalid},
		{name: "surrounding space", why: "the caller strips the Bearer prefix; nothing else is tolerated",
			cfg: hs256, tok: " " + sign(t, jwa.HS256, secret, nil, c), wantErr: ErrSessionInvalid},
		{name: "too large", why: "more than MaxSessionTokenBytes",
			cfg: hs256, tok: sign(t, jwa.HS256, secret, nil, with(c, "pad", strings.Repeat("x", MaxSessionTokenBytes))), wantErr: ErrSessionInvalid},
		{name: "payload is an array", why: "claims are an object",
			cfg: hs256, tok: signJWS(t, jwa.HS256, secret, nil, `[1,2]`), wantErr: ErrSessionInvalid},
		{name: "payload has trailing data", why: "one JSON object only",
			cfg: hs256, tok: signJWS(t, jwa.HS256, secret, nil, claimsJSON(t, c)+`{}`), wantErr: ErrSessionInvalid},
		{name: "payload is null", why: "claims are an object",
			cfg: hs256, tok: signJWS(t, jwa.HS256, secret, nil, `null`), wantErr: ErrSessionInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, tc.cfg)
			got, err := a.VerifySession(context.Background(), tc.tok)
			t.Logf("%s: got %q, %v", tc.why, got, err)
			checkErr(t, err, tc.wantErr, tc.tok)
			if tc.wantErr == nil && got != tc.want {
				t.Fatalf("user id: got %q, want %q (%s)", got, tc.want, tc.why)
			}
		})
	}
}

// hsRawAlg HMAC-signs payload with key under a header claiming alg.
func hsRawAlg(key []byte, alg, payload string) string {
	return hsRaw(key, `{"alg":"`+alg+`"}`, payload)
}

// nonCanonical respells a token's signature by setting an unused low bit of
// its last character: lenient decoders read the same bytes.
func nonCanonical(t testing.TB, tok string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if len(sig)%4 < 2 {
		t.Fatalf("nonCanonical: signature of %d characters has no unused bits", len(sig))
	}
	v := strings.IndexByte(alphabet, sig[len(sig)-1])
	out := tok[:len(tok)-1] + string(alphabet[v|1])
	a, errA := base64.RawURLEncoding.DecodeString(sig)
	b, errB := base64.RawURLEncoding.DecodeString(out[strings.LastIndexByte(out, '.')+1:])
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Fatalf("nonCanonical: the respelled signature must decode to the same bytes (%v, %v)", errA, errB)
	}
	return out
}

// swapPayload replaces the payload of a compact token, keeping its header
// and signature.
func swapPayload(tok, payload string) string {
	parts := strings.Split(tok, ".")
	parts[1] = b64.EncodeToString([]byte(payload))
	return strings.Join(parts, ".")
}

func TestVerifySessionUserClaim(t *testing.T) {
	secret := secretOf(1, 64)
	exp := `"exp":1764153600`
	cases := []struct {
		name    string
		why     string
		claim   string // UserClaim; empty: sub
		payload string
		want    string
		wantErr error
	}{
		{name: "string", why: "opaque string ids are kept",
			payload: `{"sub":"user-7f3a",` + exp + `}`, want: "user-7f3a"},
		{name: "numeric string", why: "a string is not renormalised",
			payload: `{"sub":"042",` + exp + `}`, want: "042"},
		{name: "integer", why: "integers become decimal strings",
			payload: `{"sub":42,` + exp + `}`, want: "42"},
		{name: "large integer", why: "UseNumber keeps every digit",
			payload: `{"sub":123456789012345678901234567890,` + exp + `}`, want: "123456789012345678901234567890"},
		{name: "above 2^53", why: "would lose digits as a float64",
			payload: `{"sub":9007199254740993,` + exp + `}`, want: "9007199254740993"},
		{name: "zero", why: "zero is a non-negative integer",
			payload: `{"sub":0,` + exp + `}`, want: "0"},
		{name: "integral float", why: "42.0 is the integer 42",
			payload: `{"sub":42.0,` + exp + `}`, want: "42"},
		{name: "exponent", why: "4.2e1 is the integer 42",
			payload: `{"sub":4.2e1,` + exp + `}`, want: "42"},
		{name: "float with a fraction", why: "not an integer",
			payload: `{"sub":42.5,` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "negative", why: "user ids are non-negative",
			payload: `{"sub":-7,` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "huge exponent", why: "more digits than MaxUserIDLen",
			payload: `{"sub":1e300,` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "missing", why: "no user claim",
			payload: `{` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "empty string", why: "no user",
			payload: `{"sub":"",` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "null", why: "not an id",
			payload: `{"sub":null,` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "bool", why: "not an id",
			payload: `{"sub":true,` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "object", why: "not an id",
			payload: `{"sub":{"id":1},` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "array", why: "not an id",
			payload: `{"sub":[1],` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "control character", why: "ids end up in channel names and logs",
			payload: `{"sub":"a\nb",` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "too long", why: "more than MaxUserIDLen bytes",
			payload: `{"sub":"` + strings.Repeat("u", MaxUserIDLen+1) + `",` + exp + `}`, wantErr: ErrSessionInvalid},
		{name: "custom claim int", why: "UserClaim names another claim",
			claim: "uid", payload: `{"sub":"ignored","uid":7,` + exp + `}`, want: "7"},
		{name: "custom claim string", why: "UserClaim names another claim",
			claim: "user_id", payload: `{"user_id":"u-1",` + exp + `}`, want: "u-1"},
		{name: "custom claim missing", why: "sub is not a fallback",
			claim: "uid", payload: `{"sub":"42",` + exp + `}`, wantErr: ErrSessionInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, Config{SessionSecret: secret, UserClaim: tc.claim, Now: fixedNow(t0)})
			tok := signJWS(t, jwa.HS256, secret, nil, tc.payload)
			got, err := a.VerifySession(context.Background(), tok)
			checkErr(t, err, tc.wantErr, tok)
			if tc.wantErr == nil && got != tc.want {
				t.Fatalf("user id: got %q, want %q (%s)", got, tc.want, tc.why)
			}
		})
	}
}

func TestNormalizeIntegerLiteral(t *testing.T) {
	cases := []struct {
		lit, want string
		ok        bool
	}{
		{"42", "42", true},
		{"0", "0", true},
		{"-0", "0", true},
		{"0.0", "0", true},
		{"100", "100", true},
		{"1e2", "100", true},
		{"1E+2", "100", true},
		{"1.50e2", "150", true},
		{"1500e-1", "150", true},
		{"1500e-2", "15", true},
		{"1505e-2", "", false},
		{"0.5", "", false},
		{"5e-1", "", false},
		{"-1", "", false},
		{"-1e2", "", false},
		{"1e256", "", false},
		{"1e255", "1" + strings.Repeat("0", 255), true},
		{"1e999999999999", "", false},
		{"1e-999999999999", "", false},
		{"12", "12", true},
		{".5", "", false},
		{"1.", "1", true}, // not JSON, but harmless: never produced by the decoder
		{"abc", "", false},
	}
	for _, tc := range cases {
		got, err := normalizeIntegerLiteral(tc.lit)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("normalizeIntegerLiteral(%q): got %q, %v; want %q, ok=%v", tc.lit, got, err, tc.want, tc.ok)
		}
	}
}

func TestSignDevSession(t *testing.T) {
	secret := secretOf(1, 64)
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		t.Run(alg, func(t *testing.T) {
			tok, err := SignDevSession(secret, alg, "42", time.Minute)
			if err != nil {
				t.Fatalf("SignDevSession: %v", err)
			}
			a := mustNew(t, Config{SessionSecret: secret, SessionAlgs: []string{alg}})
			got, err := a.VerifySession(context.Background(), tok)
			if err != nil || got != "42" {
				t.Fatalf("VerifySession: got %q, %v; want \"42\", nil", got, err)
			}
		})
	}
	refusals := []struct {
		name   string
		secret []byte
		alg    string
		user   string
		ttl    time.Duration
		want   string
	}{
		{"RS256", secret, "RS256", "42", time.Minute, "HS256, HS384 or HS512"},
		{"short secret", secretOf(1, 40), "HS384", "42", time.Minute, "HS384 needs at least 48 bytes"},
		{"empty user", secret, "HS256", "", time.Minute, "is empty"},
		{"zero ttl", secret, "HS256", "42", 0, "shorter than 1s"},
	}
	for _, tc := range refusals {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			_, err := SignDevSession(tc.secret, tc.alg, tc.user, tc.ttl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SignDevSession: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestVerifySessionErrorsAreDistinct checks that each outcome maps to
// exactly one sentinel.
func TestVerifySessionErrorsAreDistinct(t *testing.T) {
	secret := secretOf(1, 64)
	a := mustNew(t, hsConfig())
	_, errMissing := a.VerifySession(context.Background(), "")
	_, errExpired := a.VerifySession(context.Background(), sign(t, jwa.HS256, secret, nil, with(validClaims(), "exp", t0.Unix()-60)))
	_, errInvalid := a.VerifySession(context.Background(), "x.y.z")
	all := []error{ErrMissingSession, ErrSessionExpired, ErrSessionInvalid, ErrTokenExpired, ErrTokenInvalid}
	for _, c := range []struct {
		err, want error
	}{{errMissing, ErrMissingSession}, {errExpired, ErrSessionExpired}, {errInvalid, ErrSessionInvalid}} {
		for _, s := range all {
			if got, want := errors.Is(c.err, s), s == c.want; got != want {
				t.Errorf("errors.Is(%v, %v): got %v, want %v", c.err, s, got, want)
			}
		}
	}
}

// TestConcurrentUse runs every method from several goroutines; run it with
// -race.
func TestConcurrentUse(t *testing.T) {
	secret := secretOf(1, 64)
	a := mustNew(t, wsConfig(fixedNow(t0)))
	session := sign(t, jwa.HS256, secret, nil, validClaims())
	var wg sync.WaitGroup
	errs := make(chan error, 8*50)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				user, err := a.VerifySession(context.Background(), session)
				if err != nil {
					errs <- err
					return
				}
				tok, _, err := a.MintWSToken(fmt.Sprintf("%s-%d-%d", user, g, i))
				if err != nil {
					errs <- err
					return
				}
				c, err := a.VerifyWSToken(tok)
				if err != nil {
					errs <- err
					return
				}
				if want := fmt.Sprintf("42-%d-%d", g, i); c.UserID != want {
					errs <- fmt.Errorf("UserID: got %q, want %q", c.UserID, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
