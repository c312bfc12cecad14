package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strconv"
	"time"
)

// sessionMinter signs HS256 session JWTs as a main backend would: the user
// id in the configured claim, iat and a one-hour exp. It is not safe for
// concurrent use (it reuses one HMAC state): each handshake goroutine
// makes its own with newSessionMinter.
type sessionMinter struct {
	claim  string // JSON-quoted claim name
	header string // base64url of the JOSE header
	mac    hash.Hash
	now    func() time.Time
}

func newSessionMinter(secret []byte, claim string, now func() time.Time) *sessionMinter {
	q, _ := json.Marshal(claim)
	return &sessionMinter{
		claim:  string(q),
		header: base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)),
		mac:    hmac.New(sha256.New, secret),
		now:    now,
	}
}

// mint returns a session JWT for user.
func (m *sessionMinter) mint(user string) string {
	now := m.now().Unix()
	uq, _ := json.Marshal(user)
	claims := `{` + m.claim + `:` + string(uq) +
		`,"iat":` + strconv.FormatInt(now, 10) +
		`,"exp":` + strconv.FormatInt(now+3600, 10) + `}`
	signing := m.header + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	m.mac.Reset()
	m.mac.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.mac.Sum(nil))
}
