package auth

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSignSession: what SignSession signs, New's verifier accepts with the
// same settings, and refuses with another audience, issuer or claim.
func TestSignSession(t *testing.T) {
	secret := []byte(strings.Repeat("k", 48))
	verifier := func(t *testing.T, cfg Config) *Authenticator {
		t.Helper()
		cfg.SessionSecret = secret
		cfg.SessionAlgs = []string{"HS384"}
		cfg.WSTokenSecret = []byte(strings.Repeat("w", 32))
		a, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	claims := SessionClaims{User: "42", UserClaim: "uid", Issuer: "https://app.example.com", Audience: "herald", TTL: time.Minute}
	tok, err := SignSession(secret, "HS384", claims, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"same settings", Config{UserClaim: "uid", SessionIssuer: "https://app.example.com", SessionAudience: "herald"}, true},
		{"another audience", Config{UserClaim: "uid", SessionIssuer: "https://app.example.com", SessionAudience: "other"}, false},
		{"another issuer", Config{UserClaim: "uid", SessionIssuer: "https://evil.example", SessionAudience: "herald"}, false},
		{"another user claim", Config{UserClaim: "sub", SessionIssuer: "https://app.example.com", SessionAudience: "herald"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := verifier(t, tt.cfg).VerifySession(context.Background(), tok)
			if tt.ok && (err != nil || user != "42") {
				t.Errorf("VerifySession = %q, %v; want 42", user, err)
			}
			if !tt.ok && err == nil {
				t.Errorf("VerifySession accepted it as %q", user)
			}
		})
	}
	for name, c := range map[string]SessionClaims{
		"no user":       {TTL: time.Minute},
		"short TTL":     {User: "42", TTL: time.Millisecond},
		"claim exp":     {User: "42", UserClaim: "exp", TTL: time.Minute},
		"short secret":  {User: "42", TTL: time.Minute},
		"RS256 refused": {User: "42", TTL: time.Minute},
	} {
		alg, key := "HS384", secret
		switch name {
		case "short secret":
			key = secret[:20]
		case "RS256 refused":
			alg = "RS256"
		}
		if _, err := SignSession(key, alg, c, time.Now()); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}
