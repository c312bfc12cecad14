package auth

import (
	"context"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

func BenchmarkMintWSToken(b *testing.B) {
	a := mustNew(b, wsConfig(fixedNow(t0)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.MintWSToken("123456789"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyWSToken verifies a minted token: minted is the path
// VerifyWSToken takes for it, jwx the generic path it takes for other
// headers.
func BenchmarkVerifyWSToken(b *testing.B) {
	a := mustNew(b, wsConfig(fixedNow(t0)))
	tok, _, err := a.MintWSToken("123456789")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		verify func(string) (WSClaims, error)
	}{
		{"minted", a.VerifyWSToken},
		{"jwx", a.verifyWSTokenJWS},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifySession(b *testing.B) {
	k := keys(b)
	c := validClaims()
	cases := []struct {
		name string
		cfg  Config
		tok  string
	}{
		{"HS256", hsConfig(), sign(b, jwa.HS256, secretOf(1, 64), map[string]any{"typ": "JWT"}, c)},
		{"RS256", Config{SessionPublicKeyPEM: pemPublic(b, k.rsa), SessionAlgs: []string{"RS256"}, Now: fixedNow(t0)},
			sign(b, jwa.RS256, k.rsa, nil, c)},
		{"ES256", Config{SessionPublicKeyPEM: pemPublic(b, k.ec), SessionAlgs: []string{"ES256"}, Now: fixedNow(t0)},
			sign(b, jwa.ES256, k.ec, nil, c)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			a := mustNew(b, tc.cfg)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.VerifySession(ctx, tc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
