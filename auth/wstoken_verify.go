package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// The verification of the WS tokens herald mints, without jwx.
//
// Every handshake verifies one WS token. jwx's generic path parses the
// header and the payload as JSON objects (about 90 allocations); a token
// MintWSToken wrote has a fixed header and a fixed claim layout, so they are
// compared and scanned instead. The fast path takes a token only when its
// header segment is byte for byte the one MintWSToken writes; its signature
// is then HS256 with the WS token secret, as jwx would check it. A payload
// that is not in MintWSToken's exact layout (another writer's, or a forged
// one under a valid signature) is checked by the generic claims check, the
// same one the jwx path uses after it verified the signature. Any other
// header goes through jwx. FuzzVerifyWSTokenPaths checks that both paths
// agree on every token.

// wsScratch is what one fast verification uses: an HMAC keyed with the WS
// token secret and a buffer for the decoded payload.
type wsScratch struct {
	mac hash.Hash
	buf []byte
}

// verifyMintedWSToken verifies raw, which passed checkCompactShape, when
// its header is MintWSToken's. handled is false when the token must go
// through jwx instead; otherwise wc, expired and err are checkWSClaims'.
func (a *Authenticator) verifyMintedWSToken(raw string) (wc WSClaims, expired, handled bool, err error) {
	enc := base64.RawURLEncoding
	head, rest, _ := strings.Cut(raw, ".")
	if head != a.ws.header {
		return WSClaims{}, false, false, nil
	}
	body, sigSeg, _ := strings.Cut(rest, ".")
	if len(sigSeg) != enc.EncodedLen(sha256.Size) {
		return WSClaims{}, false, false, nil // jwx reports the wrong size
	}
	sc := a.ws.scratches.Get().(*wsScratch)
	defer a.ws.scratches.Put(sc)
	// The signature: HMAC-SHA256 over "header.payload" (RFC 7515 §5.2).
	sc.buf = append(sc.buf[:0], raw[:len(head)+1+len(body)]...)
	sc.mac.Reset()
	sc.mac.Write(sc.buf)
	var want, got [sha256.Size]byte
	sc.mac.Sum(want[:0])
	sc.buf = append(sc.buf[:0], sigSeg...)
	if n, err := enc.Decode(got[:], sc.buf); err != nil || n != len(got) {
		return WSClaims{}, false, false, nil
	}
	if !hmac.Equal(want[:], got[:]) {
		return WSClaims{}, false, true, errors.New("signature does not verify")
	}
	// The payload.
	n := enc.DecodedLen(len(body))
	sc.buf = append(sc.buf[:0], body...)
	if cap(sc.buf) < len(body)+n {
		sc.buf = append(sc.buf, make([]byte, n)...)
	}
	payload := sc.buf[len(body) : len(body)+n]
	if n, err = enc.Decode(payload, sc.buf[:len(body)]); err != nil {
		return WSClaims{}, false, false, nil
	}
	payload = payload[:n]
	m, ok := scanMintedClaims(payload)
	if !ok {
		wc, expired, err = a.checkWSClaims(payload)
		return wc, expired, true, err
	}
	if err := checkUserIDString(m.sub); err != nil {
		return WSClaims{}, false, true, fmt.Errorf("claim sub %v", err)
	}
	if !canonicalUUID(m.jti) {
		return WSClaims{}, false, true, errors.New("claim jti is not a canonical UUID")
	}
	now, exp, iat := a.now(), time.Unix(m.exp, 0), time.Unix(m.iat, 0)
	if now.Add(a.skew).Before(iat) {
		return WSClaims{}, false, true, fmt.Errorf("issued in the future, at %s (iat)", iat.UTC().Format(time.RFC3339))
	}
	wc = WSClaims{UserID: m.sub, JTI: m.jti, ExpiresAt: exp, MintedBy: mintedByJTI(m.jti, iat.Add(time.Second))}
	return wc, !now.Before(exp.Add(a.skew)), true, nil
}

func newWSScratch(secret []byte) *wsScratch {
	return &wsScratch{mac: hmac.New(sha256.New, secret), buf: make([]byte, 0, 512)}
}

// mintedClaims are the claims of a payload in MintWSToken's layout.
type mintedClaims struct {
	exp, iat int64
	jti, sub string
}

// scanMintedClaims reads a payload written exactly as MintWSToken writes
// it:
//
//	{"aud":"herald-ws","exp":<int>,"iat":<int>,"jti":"<36 bytes>","sub":"<string>"}
//
// with integers in JSON's form (no sign, no leading zero) up to the year
// 9999, and a sub of printable ASCII without escapes. ok is false for
// anything else, which the generic check then decides.
func scanMintedClaims(p []byte) (m mintedClaims, ok bool) {
	s := string(p)
	rest, ok := strings.CutPrefix(s, `{"aud":"`+WSAudience+`","exp":`)
	if !ok {
		return m, false
	}
	if m.exp, rest, ok = scanNumericDate(rest); !ok {
		return m, false
	}
	if rest, ok = strings.CutPrefix(rest, `,"iat":`); !ok {
		return m, false
	}
	if m.iat, rest, ok = scanNumericDate(rest); !ok {
		return m, false
	}
	if rest, ok = strings.CutPrefix(rest, `,"jti":"`); !ok || len(rest) < 36 {
		return m, false
	}
	m.jti, rest = rest[:36], rest[36:]
	if rest, ok = strings.CutPrefix(rest, `","sub":"`); !ok {
		return m, false
	}
	sub, ok := strings.CutSuffix(rest, `"}`)
	if !ok {
		return m, false
	}
	for i := 0; i < len(sub); i++ {
		if c := sub[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return m, false
		}
	}
	for i := 0; i < len(m.jti); i++ {
		if c := m.jti[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return m, false
		}
	}
	// Copies of their own: a socket keeps its user id for its lifetime,
	// which must not keep the whole payload alive.
	m.sub, m.jti = strings.Clone(sub), strings.Clone(m.jti)
	return m, true
}

// scanNumericDate reads a JSON integer from 0 to maxNumericDate at the
// start of s.
func scanNumericDate(s string) (v int64, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		if i == 12 {
			return 0, s, false
		}
		v = v*10 + int64(s[i]-'0')
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') || v > maxNumericDate {
		return 0, s, false
	}
	return v, s[i:], true
}

// canonicalUUID reports whether s is a UUID as uuid.UUID.String writes it:
// lowercase hex digits in groups of 8-4-4-4-12.
func canonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
