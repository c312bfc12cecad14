package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"go.uber.org/zap"
)

// Errors returned by the verification methods. The returned error wraps one
// of them (use errors.Is) and adds a detail that never contains the token.
var (
	// ErrMissingSession: no session token was presented (HTTP 401
	// {"error":"missing_session"}).
	ErrMissingSession = errors.New("auth: missing session")
	// ErrSessionExpired: a session token with a valid signature and claims
	// is past exp plus the clock skew (HTTP 401 {"error":"expired_session"}).
	ErrSessionExpired = errors.New("auth: session expired")
	// ErrSessionInvalid: anything else wrong with a session token: format,
	// algorithm, signature, typ, iss, aud, nbf, iat, missing exp, user claim
	// (HTTP 401 {"error":"invalid_session"}).
	ErrSessionInvalid = errors.New("auth: invalid session")
	// ErrTokenExpired: a WS token with a valid signature and claims is past
	// exp plus the clock skew (close code 4001 token_expired).
	ErrTokenExpired = errors.New("auth: WS token expired")
	// ErrTokenInvalid: anything else wrong with a WS token (close code 4002
	// token_invalid).
	ErrTokenInvalid = errors.New("auth: invalid WS token")
)

// Authenticator verifies session tokens and mints and verifies WS tokens.
// All its methods are safe for concurrent use. Every field is set by New and
// never written again, except inside the JWKS source, which guards its own
// state.
type Authenticator struct {
	now       func() time.Time
	skew      time.Duration
	algs      []jwa.SignatureAlgorithm // pinned session algorithms
	issuer    string
	audience  string
	userClaim string
	keys      keySource       // session keys
	jwks      *jwksSource     // nil unless the session keys come from a JWKS URL
	sessionKP jws.KeyProvider // a.fetchSessionKeys, built once
	ws        wsKeys          // WS token secret and pre-encoded header
	wsKP      jws.KeyProvider // a.fetchWSKeys, built once
	log       *zap.Logger
}

// keySource gives the session keys to try for a token's kid. ctx bounds a
// fetch it may do.
type keySource interface {
	candidates(ctx context.Context, kid string) []verifyKey
}

// staticKeys is a key set that never changes: a secret, a PEM key or a JWKS file.
type staticKeys struct{ set *keySet }

func (s staticKeys) candidates(_ context.Context, kid string) []verifyKey {
	return s.set.candidates(kid)
}

// New checks cfg, fills its defaults and returns an Authenticator. It refuses
// unknown or contradictory algorithms, short secrets, a key that does not
// fit the pinned algorithms and a non-https JWKS URL.
//
// When cfg.SessionJWKS is a file, New reads it. When it is a URL, New fetches
// it (failing if the fetch fails or yields no usable key) and starts a
// background refresher that lives until Close is called or ctx is
// cancelled, whichever comes first: pass a ctx that lives as long as the
// Authenticator, not a short startup deadline. Close must be called in every
// case to release it.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	s, err := cfg.withDefaults().validate()
	if err != nil {
		return nil, err
	}
	return newAuthenticator(ctx, s)
}

// newAuthenticator builds an Authenticator from checked settings.
func newAuthenticator(ctx context.Context, s settings) (*Authenticator, error) {
	a := &Authenticator{
		now:       s.now,
		skew:      s.skew,
		algs:      s.algs,
		issuer:    s.issuer,
		audience:  s.audience,
		userClaim: s.userClaim,
		log:       s.log,
	}
	a.sessionKP = jws.KeyProviderFunc(a.fetchSessionKeys)
	a.wsKP = jws.KeyProviderFunc(a.fetchWSKeys)

	wsSecret := s.wsSecret
	if wsSecret == nil {
		wsSecret = make([]byte, MinWSTokenSecret)
		if _, err := rand.Read(wsSecret); err != nil {
			return nil, fmt.Errorf("auth: draw a WS token secret: %w", err)
		}
	}
	a.ws = newWSKeys(wsSecret, s.wsTTL)

	switch src := s.source; {
	case src.secret != nil:
		a.keys = staticKeys{staticKeySet(src.secret, s.algs)}
	case src.publicKey != nil:
		a.keys = staticKeys{staticKeySet(src.publicKey, s.algs)}
	case src.jwksFile != "":
		set, err := loadJWKSFile(src.jwksFile, s.algs, s.log)
		if err != nil {
			return nil, err
		}
		a.keys = staticKeys{set}
	default:
		j, err := startJWKS(ctx, src.jwksURL, s)
		if err != nil {
			return nil, err
		}
		a.keys, a.jwks = j, j
	}
	return a, nil
}

// Close stops the background JWKS refresh, if any, and waits for a fetch in
// flight to end. Verification keeps working after Close with the keys
// already fetched. Close is idempotent.
func (a *Authenticator) Close() error {
	if a.jwks != nil {
		a.jwks.close()
	}
	return nil
}

// ClockSkew is the tolerance applied to token times. A replay record of a
// WS token must live until WSClaims.ExpiresAt plus ClockSkew.
func (a *Authenticator) ClockSkew() time.Duration { return a.skew }

// refusal is a reason to refuse a token, decided by herald's own checks. Its
// text never contains the token; header values it quotes are clipped.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refusef(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// clip shortens an attacker-controlled header value before it is quoted in
// an error.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// verifyDetail turns an error of jws.Verify into a detail safe to log: the
// text of herald's own refusals, or a fixed phrase (jwx's messages may quote
// parts of the input).
func verifyDetail(err error) string {
	var r *refusal
	switch {
	case errors.As(err, &r):
		return r.msg
	case jws.IsVerificationError(err):
		return "signature does not verify"
	default:
		return "malformed token"
	}
}

// checkCompactShape makes sure raw is three canonical base64url segments
// without padding, the only serialization herald accepts (no JWS JSON, no
// whitespace), and is not larger than max. Canonical means that the unused
// low bits of a segment's last character are zero, so that a token has one
// spelling only (Go's and jwx's decoders would ignore those bits).
func checkCompactShape(raw string, max int) error {
	if len(raw) > max {
		return refusef("token is %d bytes, more than %d", len(raw), max)
	}
	dots, start := 0, 0
	for i := 0; i <= len(raw); i++ {
		if i == len(raw) || raw[i] == '.' {
			if !canonicalSegment(raw[start:i]) {
				return refusef("token is not a compact JWS (segment %d is not canonical base64url)", dots+1)
			}
			dots, start = dots+1, i+1
			continue
		}
		if b64Value(raw[i]) < 0 {
			return refusef("token is not a compact JWS (byte %d is not base64url)", i)
		}
	}
	if dots != 3 {
		return refusef("token is not a compact JWS (%d segments, want 3)", dots)
	}
	return nil
}

// canonicalSegment reports whether an unpadded base64url segment has a
// valid length and no stray bits in its last character.
func canonicalSegment(seg string) bool {
	switch len(seg) % 4 {
	case 1:
		return false
	case 2:
		return b64Value(seg[len(seg)-1])&0x0f == 0
	case 3:
		return b64Value(seg[len(seg)-1])&0x03 == 0
	}
	return true
}

// b64Value is the value of a base64url character, or -1.
func b64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}

// checkCommonHeader refuses header parameters that would change how the
// token must be processed and that herald does not implement.
func checkCommonHeader(h jws.Headers) error {
	if len(h.Critical()) > 0 {
		return refusef("header crit is not supported")
	}
	if _, ok := h.Get("b64"); ok {
		return refusef("header b64 is not supported")
	}
	return nil
}
