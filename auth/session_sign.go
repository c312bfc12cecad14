package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SessionClaims are the claims SignSession puts in a session JWT.
type SessionClaims struct {
	User      string        // the user id; required
	UserClaim string        // the claim holding User (empty: "sub", as Config.UserClaim)
	Issuer    string        // iss (empty: none)
	Audience  string        // aud (empty: none)
	TTL       time.Duration // exp = now + TTL, whole seconds; at least 1s
}

// SignSession signs a session JWT with an HS256, HS384 or HS512 secret, as a
// main backend would: the user id in claims.UserClaim, iat, exp, and iss and
// aud when given, header typ "JWT". It is for trying herald by hand
// (`herald token`) and for tests; the secret must be long enough for alg
// (RFC 7518 §3.2).
func SignSession(secret []byte, alg string, claims SessionClaims, now time.Time) (string, error) {
	info, ok := lookupAlg(alg)
	if !ok || !info.hmac {
		return "", fmt.Errorf("auth: sessions are signed here with HS256, HS384 or HS512, not %q", alg)
	}
	if len(secret) < info.minSecret {
		return "", fmt.Errorf("auth: session secret is %d bytes; %s needs at least %d bytes (%d bits) of secret, see RFC 7518 §3.2",
			len(secret), alg, info.minSecret, info.minSecret*8)
	}
	if err := checkUserIDString(claims.User); err != nil {
		return "", fmt.Errorf("auth: session user id %v", err)
	}
	if claims.TTL < time.Second {
		return "", fmt.Errorf("auth: session TTL %s is shorter than 1s", claims.TTL)
	}
	name := claims.UserClaim
	if name == "" {
		name = DefaultUserClaim
	}
	switch name {
	case "iat", "exp", "iss", "aud", "nbf":
		return "", errors.New("auth: the user claim cannot be a registered time or issuer claim")
	}
	c := map[string]any{
		name:  claims.User,
		"iat": now.Unix(),
		"exp": now.Add(claims.TTL).Unix(),
	}
	if claims.Issuer != "" {
		c["iss"] = claims.Issuer
	}
	if claims.Audience != "" {
		c["aud"] = claims.Audience
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("auth: session: %w", err)
	}
	return signCompact(payload, info.alg, secret, "JWT")
}
