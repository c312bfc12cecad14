package main

import (
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/herald-gw/herald/auth"
	clientjs "github.com/herald-gw/herald/clients/js"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway"
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
	} {
		if s.set {
			given = append(given, s.name+" ("+envName(strings.TrimPrefix(s.name, "--"))+")")
		}
	}
	// Every Redis setting (every flag named redis-…): a URL, single or
	// Sentinel, Cluster seeds, and the link's tuning. Any of them means the
	// person expects Redis, which --dev never uses.
	var redis []string
	for name := range o.given {
		if strings.HasPrefix(name, "redis-") {
			redis = append(redis, name)
		}
	}
	sort.Strings(redis)
	for _, name := range redis {
		given = append(given, "--"+name+" ("+envName(name)+")")
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

// The demo page and its script, served at / and /demo.js.
//
//go:embed demo
var demoFiles embed.FS

// demoUserID is what a demo user id may be: it names a cookie path.
var demoUserID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// devHandler adds the development routes in front of herald's own:
//
//	GET  /                         the demo app (demo/index.html, demo/app.js)
//	GET  /favicon.ico, /favicon.svg its icon
//	GET  /herald.js, /herald.d.ts  the browser client, from clients/js
//	POST /dev/login?user=<id>      a session cookie for that user (Path=/)
//	POST /dev/as/<id>/login        the same, scoped to /dev/as/<id>/, so that
//	                               one browser holds several demo users
//	POST /dev/as/<id>/api/ws/token herald's token endpoint under that path
//	POST /dev/as/<id>/logout       clears that cookie, disconnects the user (4000)
//	GET  /dev/online               {"users":[…],"known":[…]}: users with a
//	                               socket here, and the demo users who logged
//	                               in since herald started (online or not)
//	POST /dev/publish?channel=<c>  publishes the body on channel c, as a
//	                               backend service's PUBLISH would
//
// Every request, herald's own routes included, must name a loopback host in
// its Host header (see loopbackHost): listening on loopback is not enough,
// because a page whose DNS name an attacker rebinds to 127.0.0.1 reaches the
// port with its own name as Host and its own origin, which the same-origin
// rule then accepts. The /dev/ POSTs also refuse a cross-origin Origin, so
// that another site open in the browser cannot drive them.
func devHandler(o *options, gw *gateway.Server, next http.Handler) http.Handler {
	d := &devRoutes{o: o, gw: gw, next: next, ch: publish.NewChannels(""), known: map[string]struct{}{}}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	mux.HandleFunc("GET /{$}", d.file("demo/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /demo.js", d.file("demo/app.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /favicon.ico", d.file("demo/favicon.svg", "image/svg+xml"))
	mux.HandleFunc("GET /favicon.svg", d.file("demo/favicon.svg", "image/svg+xml"))
	mux.HandleFunc("GET /herald.js", d.bytes(clientjs.Module, "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /herald.d.ts", d.bytes(clientjs.Types, "text/plain; charset=utf-8"))
	mux.HandleFunc("POST /dev/login", d.sameOrigin(d.login))
	mux.HandleFunc("POST /dev/as/{user}/login", d.sameOrigin(d.login))
	mux.HandleFunc("POST /dev/as/{user}/api/ws/token", d.token)
	mux.HandleFunc("POST /dev/as/{user}/logout", d.sameOrigin(d.logout))
	mux.HandleFunc("GET /dev/online", d.online)
	mux.HandleFunc("POST /dev/publish", d.sameOrigin(d.publish))
	return loopbackOnly(mux)
}

type devRoutes struct {
	o    *options
	gw   *gateway.Server
	next http.Handler // herald's own routes
	ch   publish.Channels

	mu    sync.Mutex
	known map[string]struct{} // guarded by mu: demo users who logged in, at most devKnownMax
}

func (d *devRoutes) file(name, contentType string) http.HandlerFunc {
	b, err := demoFiles.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return d.bytes(b, contentType)
}

func (d *devRoutes) bytes(b []byte, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
		_, _ = w.Write(b)
	}
}

// sameOrigin refuses a request whose Origin, when present, is not the
// page's own (scheme http, host the request's Host).
func (d *devRoutes) sameOrigin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			if err != nil || u.Scheme != "http" || u.Host != r.Host {
				devError(w, http.StatusForbidden, "origin_not_allowed")
				return
			}
		}
		h(w, r)
	}
}

// scope returns the cookie path and user of a /dev/as/<id>/ request, or of
// /dev/login?user=<id> (path "/").
func (d *devRoutes) scope(r *http.Request) (path, user string, ok bool) {
	if user = r.PathValue("user"); user != "" {
		return "/dev/as/" + user + "/", user, demoUserID.MatchString(user)
	}
	user = strings.TrimSpace(r.URL.Query().Get("user"))
	return "/", user, user != "" && len(user) <= 128
}

func (d *devRoutes) login(w http.ResponseWriter, r *http.Request) {
	path, user, ok := d.scope(r)
	if !ok {
		devError(w, http.StatusBadRequest, "want ?user=<id>, or /dev/as/<id>/ with letters, digits, - and _ (at most 32)")
		return
	}
	if r.PathValue("user") != "" {
		d.remember(user)
	}
	tok, err := auth.SignDevSession([]byte(d.o.SessionSecret), list(d.o.SessionAlgs)[0], user, devSessionTTL)
	if err != nil {
		devError(w, http.StatusBadRequest, err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     d.o.SessionCookie,
		Value:    tok,
		Path:     path,
		MaxAge:   int(devSessionTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"user_id": user, "expires_in": int(devSessionTTL / time.Second)})
}

// token serves herald's own token endpoint under /dev/as/<id>/, where the
// browser sends that demo user's cookie.
func (d *devRoutes) token(w http.ResponseWriter, r *http.Request) {
	if !demoUserID.MatchString(r.PathValue("user")) {
		devError(w, http.StatusNotFound, "not_found")
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/api/ws/token"
	r2.URL.RawPath = ""
	d.next.ServeHTTP(w, r2)
}

// logout clears the demo user's cookie and closes every socket of the user
// with 4000, through the control channel, as a backend's logout would.
func (d *devRoutes) logout(w http.ResponseWriter, r *http.Request) {
	path, user, ok := d.scope(r)
	if !ok {
		devError(w, http.StatusBadRequest, "bad user id")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: d.o.SessionCookie, Value: "", Path: path, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	if err := d.gw.DisconnectUser(r.Context(), user, "logout"); err != nil {
		devError(w, http.StatusServiceUnavailable, "publish_failed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// online lists the users holding a socket on this process.
func (d *devRoutes) online(w http.ResponseWriter, r *http.Request) {
	users := d.gw.LocalUsers(devOnlineMax)
	if users == nil {
		users = []string{}
	}
	d.mu.Lock()
	known := make([]string, 0, len(d.known))
	for u := range d.known {
		known = append(known, u)
	}
	d.mu.Unlock()
	slices.Sort(known)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Users []string `json:"users"`
		Known []string `json:"known"`
	}{users, known})
}

// remember adds a demo user to the known ones, which the demo offers as
// recipients while they are offline: what is sent to them waits in their
// inbox. Past devKnownMax, new users are not added.
func (d *devRoutes) remember(user string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.known) < devKnownMax {
		d.known[user] = struct{}{}
	}
}

// devOnlineMax bounds the list /dev/online returns.
const devOnlineMax = 500

// devPublishMax bounds a /dev/publish body.
const devPublishMax = 64 << 10

// publish is PUBLISH <channel> <body> for the embedded mode: the channel
// names are the contract's (user:<id>, socket:<id>, broadcast,
// broadcast:except:<id>, herald:control), without a prefix, and the message
// goes through the broker exactly as a backend service's would. With the
// inbox on, user:<id> goes through it, as publish.Publisher's sends do: the
// body must then be a JSON object. A body herald would not relay because
// its type is one of herald's frame types is refused with 400.
func (d *devRoutes) publish(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, devPublishMax))
	if err != nil {
		devError(w, http.StatusRequestEntityTooLarge, "payload_too_large")
		return
	}
	if len(body) == 0 || !utf8.Valid(body) {
		devError(w, http.StatusBadRequest, "the payload must be non-empty UTF-8 text: herald writes it as a text frame")
		return
	}
	ctx := r.Context()
	if d.ch.IsControl(channel) {
		var c publish.Control
		if json.Unmarshal(body, &c) != nil || c.Op != "disconnect" || c.UserID == "" {
			devError(w, http.StatusBadRequest, `want {"op":"disconnect","user_id":"<id>","reason":"…"}`)
			return
		}
		err = d.gw.DisconnectUser(ctx, c.UserID, c.Reason)
	} else if t, ok := d.ch.Parse(channel); ok {
		if gateway.IsReservedType(body) {
			devError(w, http.StatusBadRequest, "the payload's top-level type is one of herald's own frame types (welcome, pong, reconnect, resync, replay_complete): herald relays no such application payload")
			return
		}
		switch {
		case t.Kind == publish.ToUser:
			err = d.gw.SendToUser(ctx, t.ID, body)
		case t.Kind == publish.ToSocket:
			err = d.gw.SendToSocket(ctx, t.ID, body)
		case t.ID == "":
			err = d.gw.Broadcast(ctx, body)
		default:
			err = d.gw.BroadcastExcept(ctx, t.ID, body)
		}
	} else {
		devError(w, http.StatusBadRequest, "unknown channel: want user:<id>, socket:<id>, broadcast, broadcast:except:<id> or herald:control")
		return
	}
	switch {
	case errors.Is(err, publish.ErrNotObject), errors.Is(err, publish.ErrInboxIDInPayload):
		devError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		devError(w, http.StatusServiceUnavailable, "publish_failed")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func devError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// loopbackOnly refuses, with 403, a request whose Host is not a loopback
// name or address.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			devError(w, http.StatusForbidden, "host_not_loopback")
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

// devKnownMax bounds the demo users /dev/online lists as known.
const devKnownMax = 200
