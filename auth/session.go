package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// MaxSessionTokenBytes is the largest session token VerifySession reads.
const MaxSessionTokenBytes = 16 << 10

// VerifySession verifies a session JWT (the cookie value or the Bearer
// credential, without the "Bearer " prefix) and returns the user id from the
// configured user claim, normalised to a string.
//
// The header's alg must be one of the pinned algorithms and the signature
// must verify with a configured key for that alg. Then exp is required, nbf
// and iat are respected with the clock skew, iss and aud are checked when
// configured, and a token that looks like a WS token (typ "herald-ws+jwt" or
// aud "herald-ws") is refused. ctx bounds a JWKS fetch forced by an unknown
// kid.
//
// Errors wrap ErrMissingSession (raw is empty), ErrSessionExpired (valid but
// past exp) or ErrSessionInvalid (everything else, including a forged token
// whose exp has passed).
func (a *Authenticator) VerifySession(ctx context.Context, raw string) (string, error) {
	if raw == "" {
		return "", ErrMissingSession
	}
	if err := checkCompactShape(raw, MaxSessionTokenBytes); err != nil {
		return "", fmt.Errorf("%w: %v", ErrSessionInvalid, err)
	}
	payload, err := jws.Verify([]byte(raw), jws.WithCompact(), jws.WithContext(ctx), jws.WithKeyProvider(a.sessionKP))
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrSessionInvalid, verifyDetail(err))
	}
	userID, expired, err := a.checkSessionClaims(payload)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrSessionInvalid, err)
	}
	if expired {
		return "", ErrSessionExpired
	}
	return userID, nil
}

// checkSessionClaims checks the verified payload of a session token. expired
// is reported only when every other check passed.
func (a *Authenticator) checkSessionClaims(payload []byte) (userID string, expired bool, err error) {
	c, err := parseClaims(payload)
	if err != nil {
		return "", false, err
	}
	auds, err := c.audiences()
	if err != nil {
		return "", false, err
	}
	if slices.Contains(auds, WSAudience) {
		return "", false, fmt.Errorf("aud %q is for WS tokens, not sessions", WSAudience)
	}
	if a.audience != "" && !slices.Contains(auds, a.audience) {
		return "", false, errors.New("aud does not name the configured audience")
	}
	if a.issuer != "" {
		iss, _, err := c.str("iss")
		if err != nil {
			return "", false, err
		}
		if iss != a.issuer {
			return "", false, errors.New("iss is not the configured issuer")
		}
	}
	raw, ok := c[a.userClaim]
	if !ok {
		return "", false, fmt.Errorf("user claim %q is missing", clip(a.userClaim))
	}
	userID, err = normalizeUserID(raw)
	if err != nil {
		return "", false, fmt.Errorf("user claim %q %v", clip(a.userClaim), err)
	}
	tc, err := checkTimes(c, a.now(), a.skew)
	if err != nil {
		return "", false, err
	}
	return userID, tc.expired, nil
}

// fetchSessionKeys is the jws.KeyProvider of session tokens. It checks the
// header, then offers the configured keys that may verify the header's alg,
// each with exactly that alg. The alg is never inferred from a key, and a
// key is never offered with an alg that is not pinned for it.
func (a *Authenticator) fetchSessionKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	alg := h.Algorithm()
	if !slices.Contains(a.algs, alg) {
		return refusef("alg %q is not one of the pinned session algs", clip(alg.String()))
	}
	if isWSType(h.Type()) {
		return refusef("typ %q is a WS token, not a session", clip(h.Type()))
	}
	if err := checkCommonHeader(h); err != nil {
		return err
	}
	offered := 0
	for _, k := range a.keys.candidates(ctx, h.KeyID()) {
		if k.allows(alg) {
			sink.Key(alg, k.key)
			offered++
		}
	}
	if offered == 0 {
		if kid := h.KeyID(); kid != "" {
			return refusef("no session key with kid %q for alg %s", clip(kid), alg)
		}
		return refusef("no session key for alg %s", alg)
	}
	return nil
}

// isWSType reports whether a typ header names a WS token. typ is a media
// type: compared without case and without an "application/" prefix
// (RFC 7515 §4.1.9).
func isWSType(typ string) bool {
	if len(typ) > len("application/")+len(WSTokenType) {
		return false
	}
	t := strings.ToLower(typ)
	return strings.TrimPrefix(t, "application/") == WSTokenType
}

// SignDevSession signs a session token for `herald --dev` (its /dev/login):
// claims sub = userID, iat = now, exp = now + ttl, header typ "JWT". Only
// HS256, HS384 and HS512 are accepted, with a secret long enough for alg.
// It is not used in production, where the main backend issues sessions.
func SignDevSession(secret []byte, alg string, userID string, ttl time.Duration) (string, error) {
	info, ok := lookupAlg(alg)
	if !ok || !info.hmac {
		return "", fmt.Errorf("auth: dev sessions are signed with HS256, HS384 or HS512, not %q", alg)
	}
	if len(secret) < info.minSecret {
		return "", fmt.Errorf("auth: session secret is %d bytes; %s needs at least %d bytes (%d bits) of secret, see RFC 7518 §3.2",
			len(secret), alg, info.minSecret, info.minSecret*8)
	}
	if err := checkUserIDString(userID); err != nil {
		return "", fmt.Errorf("auth: dev session user id %v", err)
	}
	if ttl < time.Second {
		return "", fmt.Errorf("auth: dev session TTL %s is shorter than 1s", ttl)
	}
	now := time.Now().Unix()
	payload, err := json.Marshal(struct {
		Sub string `json:"sub"`
		Iat int64  `json:"iat"`
		Exp int64  `json:"exp"`
	}{userID, now, now + int64(ttl/time.Second)})
	if err != nil {
		return "", fmt.Errorf("auth: dev session: %w", err)
	}
	return signCompact(payload, info.alg, secret, "JWT")
}

// signCompact signs payload with jwx into a compact JWS with the given typ.
func signCompact(payload []byte, alg jwa.SignatureAlgorithm, key any, typ string) (string, error) {
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, typ); err != nil {
		return "", fmt.Errorf("auth: set typ: %w", err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return string(tok), nil
}
