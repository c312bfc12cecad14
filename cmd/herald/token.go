package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/gateway"
)

const tokenUsage = `Usage: herald token --user ID [flags]

Prints a session JWT signed with the replicas' HS session secret, as your main
backend would issue it, so that you can try a herald deployment by hand:

  curl -b "access_token=$(herald token --user 42)" -X POST https://herald.example.com/api/ws/token

It reads the same settings as the replicas (flag or HERALD_* variable):
the secret from --session-secret, HERALD_SESSION_SECRET or HERALD_SESSION_SECRET_FILE;
--session-algs (the first HS algorithm is used), --user-claim, --session-issuer,
--session-audience and --session-cookie. Asymmetric keys cannot sign here: use your
backend's signer for those.

Flags:
`

// runToken is `herald token`: it prints a session JWT (or cookie) for one
// user, signed with the HS session secret the replicas verify with.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user id the session is for (required)")
	ttl := fs.Duration("ttl", time.Hour, "session lifetime")
	cookie := fs.Bool("cookie", false, "print <session cookie>=<jwt>, for curl -b, instead of the bare JWT")
	secret := fs.String("session-secret", "", "HS* secret of session JWTs")
	secretFile := fs.String("session-secret-file", "", "file holding --session-secret")
	algs := fs.String("session-algs", auth.DefaultSessionAlg, "the replicas' pinned algorithms; the first HS one signs")
	claim := fs.String("user-claim", auth.DefaultUserClaim, "claim holding the user id")
	issuer := fs.String("session-issuer", "", "iss to put in the token (the replicas' required iss)")
	audience := fs.String("session-audience", "", "aud to put in the token (the replicas' required aud)")
	cookieName := fs.String("session-cookie", gateway.DefaultSessionCookie, "cookie name, with --cookie")
	fs.Usage = func() {
		fmt.Fprint(stderr, tokenUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("token: unexpected arguments: %q", fs.Args())
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var errs []error
	for _, name := range []string{"session-secret", "session-secret-file", "session-algs", "user-claim", "session-issuer", "session-audience", "session-cookie"} {
		if onCommandLine[name] {
			continue
		}
		if v := getenv(envName(name)); v != "" {
			if err := fs.Set(name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(name), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("token: --user is required: herald token --user 42")
	}
	if *secretFile != "" {
		if *secret != "" {
			return errors.New("token: --session-secret and --session-secret-file (or their variables) are both set; give one")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		*secret = strings.TrimRight(string(b), "\r\n")
	}
	if *secret == "" {
		return errors.New("token: no session secret: give --session-secret, HERALD_SESSION_SECRET or HERALD_SESSION_SECRET_FILE, the HS secret the replicas verify sessions with")
	}
	alg := ""
	for _, a := range list(*algs) {
		if strings.HasPrefix(a, "HS") {
			alg = a
			break
		}
	}
	if alg == "" {
		return fmt.Errorf("token: --session-algs %q has no HS algorithm; herald token signs with a shared secret only", *algs)
	}
	jwt, err := auth.SignSession([]byte(*secret), alg, auth.SessionClaims{
		User: *user, UserClaim: *claim, Issuer: *issuer, Audience: *audience, TTL: *ttl,
	}, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if *cookie {
		fmt.Fprintf(stdout, "%s=%s\n", *cookieName, jwt)
		return nil
	}
	fmt.Fprintln(stdout, jwt)
	return nil
}
