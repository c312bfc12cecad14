package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	_ "embed"

	"github.com/herald-gw/herald/auth"
)

// devSessionTTL is the lifetime of a session minted by /dev/login.
const devSessionTTL = time.Hour

// devSecrets fills in the secrets --dev needs and prints them, so that a
// person can mint sessions of their own (or point a local backend at them).
func devSecrets(o *options, out io.Writer) error {
	if o.SessionPublicKey != "" || o.SessionJWKS != "" {
		return errors.New("--dev signs sessions for /dev/login with an HS256 secret: drop --session-public-key and --session-jwks")
	}
	if o.SessionSecret == "" {
		o.SessionSecret = randomSecret()
		o.SessionAlgs = "HS256"
	}
	if o.WSTokenSecret == "" {
		o.WSTokenSecret = randomSecret()
	}
	base := "http://" + o.Addr
	fmt.Fprintf(out, `herald --dev: for trying herald on this machine only.
  session secret (HS256):  %s
  ws token secret (HS256): %s
Try it:
  curl -c /tmp/herald.jar -X POST '%s/dev/login?user=42'
  curl -b /tmp/herald.jar -X POST %s/api/ws/token
  websocat "ws://%s/ws?token=<token from above>"
or open %s/ in a browser.
`, o.SessionSecret, o.WSTokenSecret, base, base, o.Addr, base)
	return nil
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

//go:embed devpage.html
var devPage string

// devHandler adds the development routes in front of herald's own:
// POST /dev/login?user=<id> sets a session cookie for that user, and GET /
// serves a page that logs in, fetches a token and shows the socket's frames.
func devHandler(o *options, next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, devPage)
	})
	mux.HandleFunc("POST /dev/login", func(w http.ResponseWriter, r *http.Request) {
		user := strings.TrimSpace(r.URL.Query().Get("user"))
		if user == "" || len(user) > 128 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"want ?user=<id>"}`+"\n")
			return
		}
		alg := list(o.SessionAlgs)[0]
		tok, err := auth.SignDevSession([]byte(o.SessionSecret), alg, user, devSessionTTL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.SetCookie(w, &http.Cookie{
			Name:     o.SessionCookie,
			Value:    tok,
			Path:     "/",
			MaxAge:   int(devSessionTTL / time.Second),
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
		})
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": user, "expires_in": int(devSessionTTL / time.Second)})
	})
	return mux
}
