package auth

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func wsConfig(clock func() time.Time) Config {
	return Config{SessionSecret: secretOf(1, 64), WSTokenSecret: secretOf(2, 32), Now: clock}
}

func TestMintWSToken(t *testing.T) {
	a := mustNew(t, wsConfig(fixedNow(t0)))
	tok, ttl, err := a.MintWSToken("42")
	if err != nil {
		t.Fatalf("MintWSToken: %v", err)
	}
	if ttl != 30*time.Second {
		t.Errorf("ttl: got %s, want 30s", ttl)
	}
	got, err := a.VerifyWSToken(tok)
	if err != nil {
		t.Fatalf("VerifyWSToken: %v", err)
	}
	if got.UserID != "42" {
		t.Errorf("UserID: got %q, want %q", got.UserID, "42")
	}
	if want := t0.Add(30 * time.Second); !got.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt: got %s, want %s", got.ExpiresAt, want)
	}
	id, err := uuid.Parse(got.JTI)
	if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 || id.String() != got.JTI {
		t.Errorf("JTI: got %q (%v), want a canonical version 7 UUID", got.JTI, err)
	}
	if want := t0.Add(time.Millisecond); !got.MintedBy.Equal(want) {
		t.Errorf("MintedBy: got %s, want the jti's millisecond + 1ms, %s", got.MintedBy, want)
	}

	// An independent verifier (jwx's jwt package) agrees on every claim.
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKey(jwa.HS256, secretOf(2, 32)),
		jwt.WithValidate(false), jwt.WithVerify(true))
	if err != nil {
		t.Fatalf("jwt.Parse: %v", err)
	}
	if parsed.Subject() != "42" || parsed.JwtID() != got.JTI || !parsed.Expiration().Equal(got.ExpiresAt) ||
		!parsed.IssuedAt().Equal(t0) || len(parsed.Audience()) != 1 || parsed.Audience()[0] != WSAudience {
		t.Errorf("jwt.Parse claims: sub %q jti %q exp %s iat %s aud %v; want 42, %s, %s, %s, [%s]",
			parsed.Subject(), parsed.JwtID(), parsed.Expiration(), parsed.IssuedAt(), parsed.Audience(),
			got.JTI, got.ExpiresAt, t0, WSAudience)
	}
	header := strings.SplitN(tok, ".", 2)[0]
	if h, _ := b64.DecodeString(header); string(h) != `{"alg":"HS256","typ":"herald-ws+jwt"}` {
		t.Errorf("header: got %s, want {\"alg\":\"HS256\",\"typ\":\"herald-ws+jwt\"}", h)
	}

	// Every token has its own jti.
	tok2, _, err := a.MintWSToken("42")
	if err != nil {
		t.Fatal(err)
	}
	got2, err := a.VerifyWSToken(tok2)
	if err != nil {
		t.Fatal(err)
	}
	if got2.JTI == got.JTI {
		t.Errorf("two tokens share jti %s", got.JTI)
	}

	// A user id with characters JSON escapes survives.
	odd := `a"b\c</script>é`
	tok3, _, err := a.MintWSToken(odd)
	if err != nil {
		t.Fatal(err)
	}
	if got3, err := a.VerifyWSToken(tok3); err != nil || got3.UserID != odd {
		t.Errorf("VerifyWSToken(%q): got %q, %v", odd, got3.UserID, err)
	}

	for _, bad := range []string{"", "a\x00b", strings.Repeat("u", MaxUserIDLen+1)} {
		if _, _, err := a.MintWSToken(bad); err == nil {
			t.Errorf("MintWSToken(%q): got no error, want one", bad)
		}
	}
}

func TestVerifyWSToken(t *testing.T) {
	clock := newClock(t0)
	a := mustNew(t, wsConfig(clock.Now))
	ws := secretOf(2, 32)
	fresh, _, err := a.MintWSToken("42")
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Unix()
	jti := uuid.NewString()
	p := func(kv ...any) string {
		c := map[string]any{"sub": "42", "jti": jti, "iat": now, "exp": now + 30, "aud": WSAudience}
		return claimsJSON(t, with(c, kv...))
	}

	cases := []struct {
		name    string
		why     string
		tok     string
		advance time.Duration // clock offset from t0 when verifying
		wantErr error
	}{
		{name: "fresh", why: "just minted", tok: fresh},
		{name: "at the end of its life", why: "exp+skew not reached", tok: fresh, advance: 34 * time.Second},
		{name: "expired", why: "4001: past exp+skew", tok: fresh, advance: 35 * time.Second, wantErr: ErrTokenExpired},
		{name: "tampered payload", why: "4002: the signature no longer matches",
			tok: swapPayload(fresh, p("sub", "1")), wantErr: ErrTokenInvalid},
		{name: "tampered and expired", why: "a forged token is invalid, not expired",
			tok: swapPayload(fresh, p("exp", now-60)), advance: time.Hour, wantErr: ErrTokenInvalid},
		{name: "tampered signature", why: "one flipped character",
			tok: flipSig(fresh), wantErr: ErrTokenInvalid},
		{name: "non-canonical signature", why: "one token has one spelling",
			tok: nonCanonical(t, fresh), wantErr: ErrTokenInvalid},
		{name: "crafted valid", why: "the helper builds what MintWSToken builds", tok: wsRaw(ws, p())},
		{name: "other secret", why: "not signed by a replica",
			tok: wsRaw(secretOf(3, 32), p()), wantErr: ErrTokenInvalid},
		{name: "no jti", why: "single use needs an id",
			tok: wsRaw(ws, p("jti", nil)), wantErr: ErrTokenInvalid},
		{name: "jti not a UUID", why: "jti must parse as a UUID",
			tok: wsRaw(ws, p("jti", "token-1")), wantErr: ErrTokenInvalid},
		{name: "jti not canonical", why: "one spelling per id for the replay store",
			tok: wsRaw(ws, p("jti", strings.ToUpper(jti))), wantErr: ErrTokenInvalid},
		{name: "jti urn form", why: "one spelling per id for the replay store",
			tok: wsRaw(ws, p("jti", "urn:uuid:"+jti)), wantErr: ErrTokenInvalid},
		{name: "jti a number", why: "jti is a string",
			tok: wsRaw(ws, p("jti", 7)), wantErr: ErrTokenInvalid},
		{name: "no sub", why: "a socket belongs to a user",
			tok: wsRaw(ws, p("sub", nil)), wantErr: ErrTokenInvalid},
		{name: "empty sub", why: "a socket belongs to a user",
			tok: wsRaw(ws, p("sub", "")), wantErr: ErrTokenInvalid},
		{name: "numeric sub", why: "MintWSToken writes strings",
			tok: wsRaw(ws, p("sub", 42)), wantErr: ErrTokenInvalid},
		{name: "no exp", why: "exp is required",
			tok: wsRaw(ws, p("exp", nil)), wantErr: ErrTokenInvalid},
		{name: "no aud", why: "aud herald-ws is required",
			tok: wsRaw(ws, p("aud", nil)), wantErr: ErrTokenInvalid},
		{name: "other aud", why: "aud herald-ws is required",
			tok: wsRaw(ws, p("aud", "app")), wantErr: ErrTokenInvalid},
		{name: "aud array", why: "MintWSToken writes a string",
			tok: wsRaw(ws, p("aud", []string{WSAudience})), wantErr: ErrTokenInvalid},
		{name: "not yet valid", why: "nbf respected",
			tok: wsRaw(ws, p("nbf", now+60)), wantErr: ErrTokenInvalid},
		{name: "iat in the future", why: "iat respected",
			tok: wsRaw(ws, p("iat", now+60)), wantErr: ErrTokenInvalid},
		{name: "typ JWT", why: "the WS typ is required",
			tok: hsRaw(ws, `{"alg":"HS256","typ":"JWT"}`, p()), wantErr: ErrTokenInvalid},
		{name: "no typ", why: "the WS typ is required",
			tok: hsRaw(ws, `{"alg":"HS256"}`, p()), wantErr: ErrTokenInvalid},
		{name: "alg none", why: "never",
			tok: hsRaw(nil, `{"alg":"none","typ":"herald-ws+jwt"}`, p()), wantErr: ErrTokenInvalid},
		{name: "HS512 with the WS secret", why: "only HS256",
			tok: sign(t, jwa.HS512, ws, map[string]any{"typ": WSTokenType}, with(map[string]any{
				"sub": "42", "jti": jti, "exp": now + 30, "aud": WSAudience})), wantErr: ErrTokenInvalid},
		{name: "crit header", why: "no extension is understood",
			tok: hsRaw(ws, `{"alg":"HS256","typ":"herald-ws+jwt","crit":["x"],"x":1}`, p()), wantErr: ErrTokenInvalid},
		{name: "empty", why: "no token", tok: "", wantErr: ErrTokenInvalid},
		{name: "garbage", why: "not a JWS", tok: "hello", wantErr: ErrTokenInvalid},
		{name: "too large", why: "more than MaxWSTokenBytes",
			tok: wsRaw(ws, p("pad", strings.Repeat("x", MaxWSTokenBytes))), wantErr: ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock.Set(t0.Add(tc.advance))
			got, err := a.VerifyWSToken(tc.tok)
			t.Logf("%s: got %q, %v", tc.why, got, err)
			checkErr(t, err, tc.wantErr, tc.tok)
			if tc.wantErr == nil && got.UserID != "42" {
				t.Fatalf("UserID: got %q, want \"42\" (%s)", got.UserID, tc.why)
			}
		})
	}
}

// TestFlipSigBreaksTheSignature: the tests' forged tokens must be invalid
// every time. A signature's last base64url character carries 4 signature
// bits and 2 unused ones, which the decoder ignores: changing a final 'A'
// to 'B' changed only those, so a token "with a flipped last character"
// stayed valid once in 16 mints (TestVerifyWSTokenMintedPath/bad_signature
// failed 1 of 5 runs of go test -count=5).
func TestFlipSigBreaksTheSignature(t *testing.T) {
	a := mustNew(t, wsConfig(fixedNow(t0)))
	for i := 0; ; i++ {
		tok, _, err := a.MintWSToken("user-1")
		if err != nil {
			t.Fatal(err)
		}
		if tok[len(tok)-1] != 'A' {
			if i == 10000 {
				t.Fatal("no token ending in A in 10,000 mints")
			}
			continue
		}
		if _, _, handled, err := a.verifyMintedWSToken(flipSig(tok)); !handled || err == nil {
			t.Fatalf("flipSig(%s) verified: handled %v, err %v", tok, handled, err)
		}
		if _, err := a.VerifyWSToken(flipSig(tok)); err == nil {
			t.Fatalf("flipSig(%s) verified", tok)
		}
		return
	}
}

// flipSig changes the first character of a token's signature, whose six
// bits are all signature bits.
func flipSig(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	r := byte('A')
	if tok[i] == 'A' {
		r = 'B'
	}
	return tok[:i] + string(r) + tok[i+1:]
}

// TestTokenKindsNotInterchangeable checks both directions, with the same
// secret for sessions and WS tokens (so that typ and aud, not the
// signature, are what refuse) and with different secrets.
func TestTokenKindsNotInterchangeable(t *testing.T) {
	shared := secretOf(5, 32)
	for _, same := range []bool{true, false} {
		t.Run(fmt.Sprintf("same secret %v", same), func(t *testing.T) {
			cfg := Config{SessionSecret: shared, WSTokenSecret: secretOf(6, 32), Now: fixedNow(t0)}
			if same {
				cfg.WSTokenSecret = shared
			}
			a := mustNew(t, cfg)
			now := t0.Unix()
			wsTok, _, err := a.MintWSToken("42")
			if err != nil {
				t.Fatal(err)
			}
			jti := uuid.NewString()
			cases := []struct {
				name    string
				why     string
				verify  string // "session" or "ws"
				tok     string
				wantErr error
			}{
				{name: "WS token as session", why: "typ herald-ws+jwt and aud herald-ws",
					verify: "session", tok: wsTok, wantErr: ErrSessionInvalid},
				{name: "WS token with typ JWT as session", why: "aud herald-ws alone refuses",
					verify: "session", tok: hsRaw(cfg.WSTokenSecret, `{"alg":"HS256","typ":"JWT"}`,
						claimsJSON(t, map[string]any{"sub": "42", "jti": jti, "exp": now + 30, "aud": WSAudience})),
					wantErr: ErrSessionInvalid},
				{name: "WS header with a session aud as session", why: "typ herald-ws+jwt alone refuses",
					verify: "session", tok: wsRaw(cfg.WSTokenSecret,
						claimsJSON(t, map[string]any{"sub": "42", "jti": jti, "exp": now + 30})),
					wantErr: ErrSessionInvalid},
				{name: "session as WS token", why: "no WS typ, aud or jti",
					verify: "ws", tok: sign(t, jwa.HS256, shared, map[string]any{"typ": "JWT"}, validClaims()),
					wantErr: ErrTokenInvalid},
				{name: "session with jti and aud as WS token", why: "typ alone refuses",
					verify: "ws", tok: sign(t, jwa.HS256, shared, nil,
						with(validClaims(), "jti", jti, "aud", WSAudience)),
					wantErr: ErrTokenInvalid},
				{name: "WS token as WS token", why: "control", verify: "ws", tok: wsTok},
				{name: "session as session", why: "control", verify: "session",
					tok: sign(t, jwa.HS256, shared, nil, validClaims())},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					var err error
					if tc.verify == "session" {
						_, err = a.VerifySession(context.Background(), tc.tok)
					} else {
						_, err = a.VerifyWSToken(tc.tok)
					}
					t.Logf("%s: got %v", tc.why, err)
					checkErr(t, err, tc.wantErr, tc.tok)
					if err != nil && same && strings.Contains(err.Error(), "signature") {
						t.Fatalf("got %v: with a shared secret the refusal must come from typ/aud, not the signature (%s)", err, tc.why)
					}
				})
			}
		})
	}
}

func TestMintedBy(t *testing.T) {
	a := mustNew(t, wsConfig(fixedNow(t0)))
	ws := a.ws.secret
	exp := t0.Add(30 * time.Second).Unix()
	v4 := uuid.NewString()
	v7, _ := newV7(t0.Add(400 * time.Millisecond))
	late, _ := newV7(t0.Add(time.Hour)) // a jti time after iat + 1s: iat wins
	tests := []struct {
		name string
		tok  string
		want time.Time
	}{
		{"v7 jti", wsRaw(ws, fmt.Sprintf(`{"aud":"herald-ws","exp":%d,"iat":%d,"jti":%q,"sub":"42"}`, exp, t0.Unix(), v7)), t0.Add(401 * time.Millisecond)},
		{"v4 jti: iat + 1s", wsRaw(ws, fmt.Sprintf(`{"aud":"herald-ws","exp":%d,"iat":%d,"jti":%q,"sub":"42"}`, exp, t0.Unix(), v4)), t0.Add(time.Second)},
		{"no iat: exp", wsRaw(ws, fmt.Sprintf(`{"aud":"herald-ws","exp":%d,"jti":%q,"sub":"42"}`, exp, v4)), time.Unix(exp, 0)},
		{"v7 after iat: iat + 1s", wsRaw(ws, fmt.Sprintf(`{"aud":"herald-ws","exp":%d,"iat":%d,"jti":%q,"sub":"42"}`, exp, t0.Unix(), late)), t0.Add(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.VerifyWSToken(tc.tok)
			if err != nil {
				t.Fatal(err)
			}
			if !got.MintedBy.Equal(tc.want) {
				t.Errorf("MintedBy = %s, want %s", got.MintedBy, tc.want)
			}
		})
	}
}
