package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	_ "embed"

	"github.com/herald-gw/herald/auth"
)

// devSessionTTL is the lifetime of a session minted by /dev/login.
const devSessionTTL = time.Hour

// devSecrets refuses the settings --dev must not be given, generates the
// two secrets it needs and prints them, so that a person can mint sessions
// of their own (or point a local backend at them).
//
// /dev/login mints a session for any user id. With a real session key those
// sessions would open sockets on real replicas, and with a real WS token
// secret or Redis the dev user's sockets would receive real users' messages.
// So --dev takes none of them: it only runs embedded, with secrets it made,
// and it prints only those.
func devSecrets(o *options, out io.Writer) error {
	var given []string
	for _, s := range []struct {
		set  bool
		name string
	}{
		{o.SessionSecret != "", "--session-secret"},
		{o.SessionPublicKey != "", "--session-public-key"},
		{o.SessionJWKS != "", "--session-jwks"},
		{o.WSTokenSecret != "", "--ws-token-secret"},
		{o.RedisURL != "", "--redis-url"},
	} {
		if s.set {
			given = append(given, s.name+" ("+envName(strings.TrimPrefix(s.name, "--"))+")")
		}
	}
	if len(given) > 0 {
		return fmt.Errorf("--dev mints sessions for any user, so it runs embedded with secrets it generates and takes no real ones: unset %s, or run herald without --dev", strings.Join(given, ", "))
	}
	o.SessionSecret = randomSecret()
	o.SessionAlgs = "HS256"
	o.WSTokenSecret = randomSecret()
	base := "http://" + o.Addr
	fmt.Fprintf(out, `herald --dev: for trying herald on this machine only (loopback, embedded, no Redis).
Secrets generated for this process (they change at every start):
  session secret (HS256):  %s
  ws token secret (HS256): %s
Open %s/ in two or more tabs for the demo, or:
  curl -c /tmp/herald.jar -X POST '%s/dev/login?user=42'
  curl -b /tmp/herald.jar -X POST %s/api/ws/token
  websocat "ws://%s/ws?token=<token from above>"
  curl -X POST '%s/dev/publish?channel=user:42' -d '{"type":"hello"}'
`, o.SessionSecret, o.WSTokenSecret, base, base, base, o.Addr, base)
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
//
// Every request, herald's own routes included, must name a loopback host in
// its Host header (see loopbackHost): listening on loopback is not enough,
// because a page whose DNS name an attacker rebinds to 127.0.0.1 reaches the
// port with its own name as Host and its own origin, which the same-origin
// rule then accepts.
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
	return loopbackOnly(mux)
}

// loopbackOnly refuses, with 403, a request whose Host is not a loopback
// name or address.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"error":"host_not_loopback"}`+"\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether host (a Host header: name or address, with
// or without a port) is localhost, a name under .localhost (RFC 6761:
// browsers resolve them to loopback themselves), or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
