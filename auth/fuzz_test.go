package auth

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
)

// Each fuzz target takes a raw token, verified as it is, and a payload,
// signed with the right key and header and then verified, so that the claim
// checks are reached even though the fuzzer cannot forge signatures.

func FuzzVerifyWSToken(f *testing.F) {
	secret := secretOf(2, 32)
	a := mustNew(f, Config{SessionSecret: secretOf(1, 64), WSTokenSecret: secret, Now: fixedNow(t0)})
	minted, _, err := a.MintWSToken("42")
	if err != nil {
		f.Fatal(err)
	}
	mintedPayload, _ := b64.DecodeString(strings.Split(minted, ".")[1])
	jti := uuid.NewString()
	f.Add(minted, mintedPayload)
	f.Add(flipSig(minted), []byte(`{"aud":"herald-ws","sub":"7","jti":"`+jti+`","exp":1764150010}`))
	f.Add("", []byte(``))
	f.Add("a.b.c", []byte(`{}`))
	f.Add(sign(f, jwa.HS256, secretOf(1, 64), nil, validClaims()), []byte(`{"aud":["herald-ws"],"sub":"7","jti":"`+jti+`","exp":1764150010}`))
	f.Add(hsRaw(nil, `{"alg":"none","typ":"herald-ws+jwt"}`, string(mintedPayload)), []byte(`{"aud":"herald-ws","sub":"7","jti":"`+strings.ToUpper(jti)+`","exp":1e400}`))
	f.Add(wsRaw(secret, `{"aud":"herald-ws","sub":"x","jti":"`+jti+`","exp":1764149000}`), []byte(`{"aud":"herald-ws","sub":"x","jti":"`+jti+`","exp":1764150010,"nbf":1764150001.5,"iat":1}`))

	f.Add("eyJ0..", []byte(`{"aud":"herald-ws","sub":"0","jti":"00000000-0000-0000-0000-000000000000","exp":9270000000}`))

	f.Fuzz(func(t *testing.T, raw string, payload []byte) {
		checkWSToken(t, a, raw)
		if len(payload) < MaxWSTokenBytes {
			checkWSToken(t, a, wsRaw(secret, string(payload)))
		}
	})
}

// checkWSToken verifies raw and checks the properties every outcome has.
func checkWSToken(t *testing.T, a *Authenticator, raw string) {
	c, err := a.VerifyWSToken(raw)
	if err != nil {
		if !errors.Is(err, ErrTokenInvalid) && !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("VerifyWSToken: error %v wraps neither ErrTokenInvalid nor ErrTokenExpired", err)
		}
		if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
			t.Fatalf("VerifyWSToken: error %q contains the token", err)
		}
		return
	}
	// The claims agree with an independent decoding of the payload.
	parts := strings.Split(raw, ".")
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("verified token has an undecodable payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("verified token has a payload encoding/json refuses: %v", err)
	}
	if m["sub"] != c.UserID || m["jti"] != c.JTI || m["aud"] != WSAudience {
		t.Fatalf("claims %+v disagree with payload %s", c, body)
	}
	exp, _ := m["exp"].(float64)
	got := float64(c.ExpiresAt.Unix()) + float64(c.ExpiresAt.Nanosecond())/1e9 // UnixNano overflows after 2262
	if d := got - exp; math.Abs(d) > 1e-3*math.Max(1, exp/1e9) {
		t.Fatalf("ExpiresAt %s disagrees with exp %v", c.ExpiresAt, exp)
	}
	if id, err := uuid.Parse(c.JTI); err != nil || id.String() != c.JTI {
		t.Fatalf("JTI %q is not a canonical UUID", c.JTI)
	}
	if !c.ExpiresAt.Add(a.ClockSkew()).After(t0) {
		t.Fatalf("accepted a token that expired at %s", c.ExpiresAt)
	}
	// Round trip: a token minted for this user verifies to the same user.
	tok, _, err := a.MintWSToken(c.UserID)
	if err != nil {
		t.Fatalf("MintWSToken(%q) for a verified user: %v", c.UserID, err)
	}
	if c2, err := a.VerifyWSToken(tok); err != nil || c2.UserID != c.UserID {
		t.Fatalf("round trip of %q: got %q, %v", c.UserID, c2.UserID, err)
	}
}

func FuzzVerifySession(f *testing.F) {
	secret := secretOf(1, 64)
	a := mustNew(f, Config{SessionSecret: secret, WSTokenSecret: secretOf(2, 32), Now: fixedNow(t0)})
	valid := sign(f, jwa.HS256, secret, map[string]any{"typ": "JWT"}, validClaims())
	minted, _, err := a.MintWSToken("42")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, []byte(`{"sub":42,"exp":1764153600}`))
	f.Add(flipSig(valid), []byte(`{"sub":"x","exp":1764153600,"nbf":1,"iat":1,"aud":["a"],"iss":"i"}`))
	f.Add(minted, []byte(`{"sub":4.2e1,"exp":1764153600.5}`))
	f.Add("", []byte(`{"sub":-0,"exp":1764153600}`))
	f.Add("x.y.z", []byte(`{"sub":1e300,"exp":1764153600}`))
	f.Add(hsRaw(nil, `{"alg":"none"}`, `{"sub":"1","exp":1764153600}`), []byte(`[]`))
	f.Add(sign(f, jwa.HS256, secret, nil, with(validClaims(), "exp", t0.Unix()-60)), []byte(`{"sub":"\u0000","exp":1764153600}`))
	f.Add(sign(f, jwa.HS512, secret, nil, validClaims()), []byte(`{"sub":123456789012345678901234567890.000,"exp":1764153600,"aud":"herald-ws"}`))

	f.Fuzz(func(t *testing.T, raw string, payload []byte) {
		checkSession(t, a, raw)
		if len(payload) < MaxSessionTokenBytes/2 {
			checkSession(t, a, hsRaw(secret, `{"alg":"HS256","typ":"JWT"}`, string(payload)))
		}
	})
}

// checkSession verifies raw and checks the properties every outcome has.
func checkSession(t *testing.T, a *Authenticator, raw string) {
	userID, err := a.VerifySession(context.Background(), raw)
	if err != nil {
		if !errors.Is(err, ErrSessionInvalid) && !errors.Is(err, ErrSessionExpired) && !errors.Is(err, ErrMissingSession) {
			t.Fatalf("VerifySession: error %v wraps no session sentinel", err)
		}
		if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
			t.Fatalf("VerifySession: error %q contains the token", err)
		}
		return
	}
	if err := checkUserIDString(userID); err != nil {
		t.Fatalf("VerifySession returned user id %q, which %v", userID, err)
	}
	// The user id agrees with an independent reading of the claim.
	parts := strings.Split(raw, ".")
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("verified token has an undecodable payload: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("verified token has a payload encoding/json refuses: %v", err)
	}
	sub := strings.TrimSpace(string(m["sub"]))
	if strings.HasPrefix(sub, `"`) {
		var s string
		if err := json.Unmarshal([]byte(sub), &s); err != nil || s != userID {
			t.Fatalf("string sub %s gave user id %q", sub, userID)
		}
	} else {
		r, ok := new(big.Rat).SetString(sub)
		if !ok || !r.IsInt() || r.Sign() < 0 || r.Num().String() != userID {
			t.Fatalf("numeric sub %s gave user id %q", sub, userID)
		}
	}
	// Round trip through a WS token.
	tok, _, err := a.MintWSToken(userID)
	if err != nil {
		t.Fatalf("MintWSToken(%q) for a verified user: %v", userID, err)
	}
	if c, err := a.VerifyWSToken(tok); err != nil || c.UserID != userID {
		t.Fatalf("round trip of %q: got %q, %v", userID, c.UserID, err)
	}
}
