package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// WS token constants, part of the wire contract.
const (
	// WSTokenType is the typ header of every WS token. Session tokens must
	// not carry it.
	WSTokenType = "herald-ws+jwt"
	// WSAudience is the aud claim of every WS token. Session tokens must
	// not carry it.
	WSAudience = "herald-ws"
	// MaxWSTokenBytes is the largest WS token VerifyWSToken reads.
	MaxWSTokenBytes = 4 << 10
)

// WSClaims are the checked claims of a WS token.
type WSClaims struct {
	// UserID is the sub claim: the user the socket belongs to.
	UserID string
	// JTI is the token id (a canonical UUID string) for the replay store.
	JTI string
	// ExpiresAt is exp. The token is refused from ExpiresAt plus the clock
	// skew on, so a replay record must live until then.
	ExpiresAt time.Time
	// MintedBy is the latest time the token can have been minted, by the
	// minting replica's clock: the millisecond in its jti (a UUIDv7, as
	// herald mints them) plus one, or iat plus one second (iat is whole
	// seconds), whichever is earlier; ExpiresAt for a token with neither.
	// The replay store refuses a token minted before it started.
	MintedBy time.Time
}

// wsHeaderJSON is the protected header of every WS token.
const wsHeaderJSON = `{"alg":"HS256","typ":"` + WSTokenType + `"}`

// wsKeys holds what minting and checking WS tokens needs. Immutable after
// newWSKeys, except the pool, which is safe for concurrent use.
type wsKeys struct {
	secret []byte
	ttl    time.Duration
	header string     // base64url of wsHeaderJSON
	macs   *sync.Pool // of hash.Hash: HMAC-SHA256 keyed with secret
	// scratches is of *wsScratch keyed with secret (wstoken_verify.go).
	scratches *sync.Pool
}

func newWSKeys(secret []byte, ttl time.Duration) wsKeys {
	return wsKeys{
		secret: secret,
		ttl:    ttl,
		header: base64.RawURLEncoding.EncodeToString([]byte(wsHeaderJSON)),
		macs: &sync.Pool{New: func() any {
			return hmac.New(sha256.New, secret)
		}},
		scratches: &sync.Pool{New: func() any { return newWSScratch(secret) }},
	}
}

// wsPayload is the claim set of a WS token, in the order it is written.
type wsPayload struct {
	Aud string `json:"aud"`
	Exp int64  `json:"exp"`
	Iat int64  `json:"iat"`
	JTI string `json:"jti"`
	Sub string `json:"sub"`
}

// MintWSToken mints a single-use WS token for userID, which must be a user
// id as VerifySession returns it. It returns the token and its lifetime
// (the "expires_in" of the token endpoint). The token's jti is a random
// UUID (version 4); exp is iat plus the configured TTL, in whole seconds.
func (a *Authenticator) MintWSToken(userID string) (token string, ttl time.Duration, err error) {
	if err := checkUserIDString(userID); err != nil {
		return "", 0, fmt.Errorf("auth: cannot mint a WS token: user id %v", err)
	}
	now := a.now()
	jti, err := newV7(now)
	if err != nil {
		return "", 0, fmt.Errorf("auth: cannot mint a WS token: %w", err)
	}
	iat := now.Unix()
	payload, err := json.Marshal(wsPayload{
		Aud: WSAudience,
		Exp: iat + int64(a.ws.ttl/time.Second),
		Iat: iat,
		JTI: jti.String(),
		Sub: userID,
	})
	if err != nil {
		return "", 0, fmt.Errorf("auth: cannot mint a WS token: %w", err)
	}
	return a.ws.sign(payload), a.ws.ttl, nil
}

// sign returns header.payload.signature for a payload, HS256 over the
// base64url of the header and the payload (RFC 7515 §5.1).
func (k *wsKeys) sign(payload []byte) string {
	enc := base64.RawURLEncoding
	n := len(k.header) + 1 + enc.EncodedLen(len(payload))
	buf := make([]byte, 0, n+1+enc.EncodedLen(sha256.Size))
	buf = append(buf, k.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, payload)

	mac := k.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(buf)
	var sum [sha256.Size]byte
	sig := mac.Sum(sum[:0])
	k.macs.Put(mac)

	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf)
}

// VerifyWSToken verifies a WS token minted by MintWSToken (by this replica
// or any other sharing the WS token secret) and returns its claims. It does
// not consume the token: the caller records WSClaims.JTI in the replay store.
//
// The header must be alg HS256 and typ "herald-ws+jwt", the signature must
// verify with the WS token secret, aud must be "herald-ws", sub a non-empty
// user id, jti a canonical UUID and exp present; nbf and iat are respected
// with the clock skew. Session tokens are therefore refused even when they
// share the secret.
//
// Errors wrap ErrTokenExpired (valid but past exp: close 4001) or
// ErrTokenInvalid (everything else, including a forged expired token: close
// 4002).
//
// A token whose header is byte for byte the one MintWSToken writes is
// checked without a generic JSON parse (wstoken_verify.go); any other token
// goes through jwx. Both give the same result for every token.
func (a *Authenticator) VerifyWSToken(raw string) (WSClaims, error) {
	if err := checkCompactShape(raw, MaxWSTokenBytes); err != nil {
		return WSClaims{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if wc, expired, handled, err := a.verifyMintedWSToken(raw); handled {
		return wsResult(wc, expired, err)
	}
	return a.verifyWSTokenJWS(raw)
}

// verifyWSTokenJWS is VerifyWSToken through jwx's generic JWS verification,
// for any header. raw has passed checkCompactShape.
func (a *Authenticator) verifyWSTokenJWS(raw string) (WSClaims, error) {
	payload, err := jws.Verify([]byte(raw), jws.WithCompact(), jws.WithKeyProvider(a.wsKP))
	if err != nil {
		return WSClaims{}, fmt.Errorf("%w: %s", ErrTokenInvalid, verifyDetail(err))
	}
	return wsResult(a.checkWSClaims(payload))
}

// wsResult turns the outcome of a claims check into VerifyWSToken's.
func wsResult(wc WSClaims, expired bool, err error) (WSClaims, error) {
	if err != nil {
		return WSClaims{}, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if expired {
		return WSClaims{}, ErrTokenExpired
	}
	return wc, nil
}

// checkWSClaims checks the verified payload of a WS token. expired is
// reported only when every other check passed.
func (a *Authenticator) checkWSClaims(payload []byte) (WSClaims, bool, error) {
	c, err := parseClaims(payload)
	if err != nil {
		return WSClaims{}, false, err
	}
	aud, ok, err := c.str("aud")
	if err != nil {
		return WSClaims{}, false, err
	}
	if !ok || aud != WSAudience {
		return WSClaims{}, false, fmt.Errorf("aud is not %q", WSAudience)
	}
	sub, ok, err := c.str("sub")
	if err != nil {
		return WSClaims{}, false, err
	}
	if !ok {
		return WSClaims{}, false, errors.New("claim sub is missing")
	}
	if err := checkUserIDString(sub); err != nil {
		return WSClaims{}, false, fmt.Errorf("claim sub %v", err)
	}
	jti, ok, err := c.str("jti")
	if err != nil {
		return WSClaims{}, false, err
	}
	if !ok {
		return WSClaims{}, false, errors.New("claim jti is missing")
	}
	if id, err := uuid.Parse(jti); err != nil || id.String() != jti {
		return WSClaims{}, false, errors.New("claim jti is not a canonical UUID")
	}
	tc, err := checkTimes(c, a.now(), a.skew)
	if err != nil {
		return WSClaims{}, false, err
	}
	return WSClaims{UserID: sub, JTI: jti, ExpiresAt: tc.exp, MintedBy: mintedBy(c, jti, tc.exp)}, tc.expired, nil
}

// fetchWSKeys is the jws.KeyProvider of WS tokens: the header must be exactly
// what MintWSToken writes (alg HS256, typ herald-ws+jwt), and the only key
// offered is the WS token secret, with HS256.
func (a *Authenticator) fetchWSKeys(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if alg := h.Algorithm(); alg != jwa.HS256 {
		return refusef("alg %q is not HS256", clip(alg.String()))
	}
	if typ := h.Type(); typ != WSTokenType {
		return refusef("typ %q is not %q", clip(typ), WSTokenType)
	}
	if err := checkCommonHeader(h); err != nil {
		return err
	}
	sink.Key(jwa.HS256, a.ws.secret)
	return nil
}

// newV7 returns a UUIDv7 (RFC 9562) for the millisecond of now: 48 bits of
// Unix milliseconds, then 74 random bits. The replay store reads the time
// back (see WSClaims.MintedBy) to know, to the millisecond, when the token
// was minted.
func newV7(now time.Time) (uuid.UUID, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return id, err
	}
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		id[i] = byte(ms >> (40 - 8*i))
	}
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // variant RFC 9562
	return id, nil
}

// mintedBy computes WSClaims.MintedBy from the verified claims.
func mintedBy(c claims, jti string, exp time.Time) time.Time {
	latest := exp
	if iat, ok, err := c.numericDate("iat"); err == nil && ok {
		latest = iat.Add(time.Second)
	}
	return mintedByJTI(jti, latest)
}

// mintedByJTI returns the millisecond in jti plus one when jti is a UUIDv7
// and that is before latest, and latest otherwise.
func mintedByJTI(jti string, latest time.Time) time.Time {
	if id, err := uuid.Parse(jti); err == nil && id.Version() == 7 {
		var ms uint64
		for i := range 6 {
			ms = ms<<8 | uint64(id[i])
		}
		if t := time.UnixMilli(int64(ms)).Add(time.Millisecond); t.Before(latest) {
			latest = t
		}
	}
	return latest
}
