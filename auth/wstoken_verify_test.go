package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Both verification paths of WS tokens agree: the outcome of VerifyWSToken
// (which takes MintWSToken's header without jwx) is the outcome of the jwx
// path for the same token.
func FuzzVerifyWSTokenPaths(f *testing.F) {
	secret := secretOf(2, 32)
	a := mustNew(f, Config{SessionSecret: secretOf(1, 64), WSTokenSecret: secret, Now: fixedNow(t0)})
	minted, _, err := a.MintWSToken("42")
	if err != nil {
		f.Fatal(err)
	}
	jti := uuid.NewString()
	for _, p := range []string{
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + strings.ToUpper(jti) + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"7","sub":"8"}`,
		`{"aud":"herald-ws","exp":01764150030,"iat":1764150000,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764150030.5,"iat":1764150000,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764149000,"iat":1764140000,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764159000,"iat":1764159000,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":253402300800,"iat":0,"jti":"` + jti + `","sub":"7"}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"a\u0000b"}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"é"}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":""}`,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"7"} `,
		`{"aud":"herald-ws","exp":1764150030,"iat":1764150000,"jti":"` + jti + `","sub":"7","nbf":1764159000}`,
	} {
		f.Add(wsRaw(secret, p))
	}
	f.Add(minted)
	f.Add(flipSig(minted))
	f.Add(hsRaw(secret, `{"typ":"herald-ws+jwt","alg":"HS256"}`, `{"aud":"herald-ws","exp":1764150030,"jti":"`+jti+`","sub":"7"}`))
	f.Add(hsRaw(secretOf(3, 32), wsHeaderJSON, `{"aud":"herald-ws","exp":1764150030,"jti":"`+jti+`","sub":"7"}`))
	f.Add(strings.Split(minted, ".")[0] + ".." + strings.Split(minted, ".")[2])
	f.Fuzz(func(t *testing.T, raw string) {
		if checkCompactShape(raw, MaxWSTokenBytes) != nil {
			return // refused before either path
		}
		got, gotErr := a.VerifyWSToken(raw)
		want, wantErr := a.verifyWSTokenJWS(raw)
		if (gotErr == nil) != (wantErr == nil) || errors.Is(gotErr, ErrTokenExpired) != errors.Is(wantErr, ErrTokenExpired) {
			t.Fatalf("VerifyWSToken: %v; jwx path: %v", gotErr, wantErr)
		}
		if gotErr == nil && (got.UserID != want.UserID || got.JTI != want.JTI || !got.ExpiresAt.Equal(want.ExpiresAt) || !got.MintedBy.Equal(want.MintedBy)) {
			t.Fatalf("claims %+v, jwx path %+v", got, want)
		}
	})
}

// Minted tokens are verified without jwx, and without its allocations.
func TestVerifyWSTokenMintedPath(t *testing.T) {
	a := mustNew(t, wsConfig(fixedNow(t0)))
	tok, _, err := a.MintWSToken("user-1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		raw         string
		handled     bool
		wantErr     bool
		wantExpired bool
	}{
		{"minted", tok, true, false, false},
		{"bad signature", flipSig(tok), true, true, false},
		{"other header", hsRaw(secretOf(2, 32), `{"typ":"herald-ws+jwt","alg":"HS256"}`, `{}`), false, false, false},
		{"other layout", wsRaw(secretOf(2, 32), `{"sub":"x","aud":"herald-ws","exp":1764150030,"jti":"`+uuid.NewString()+`"}`), true, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, expired, handled, err := a.verifyMintedWSToken(tc.raw)
			if handled != tc.handled || (err != nil) != tc.wantErr || expired != tc.wantExpired {
				t.Fatalf("handled %v, expired %v, err %v; want handled %v, error %v", handled, expired, err, tc.handled, tc.wantErr)
			}
		})
	}
	// Later, the same token is expired on both paths.
	late := mustNew(t, wsConfig(fixedNow(t0.Add(time.Hour))))
	if _, expired, handled, err := late.verifyMintedWSToken(tok); !handled || err != nil || !expired {
		t.Fatalf("an hour later: handled %v, expired %v, err %v", handled, expired, err)
	}
	if raceDetector {
		return
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := a.VerifyWSToken(tok); err != nil {
			t.Fatal(err)
		}
	})
	// The payload string, and an error-free result: a handful, against
	// about 90 on the jwx path.
	if allocs > 4 {
		t.Fatalf("VerifyWSToken of a minted token: %v allocations", allocs)
	}
}
