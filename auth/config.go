package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/internal/redact"
)

// Defaults and limits of the configuration.
const (
	// DefaultSessionAlg is the pinned algorithm when Config.SessionAlgs is empty.
	DefaultSessionAlg = "HS256"
	// DefaultUserClaim is the claim read as the user id when Config.UserClaim is empty.
	DefaultUserClaim = "sub"
	// DefaultClockSkew is the tolerance applied to exp, nbf and iat.
	DefaultClockSkew = 5 * time.Second
	// MaxClockSkew is the largest tolerance New accepts: more would keep
	// expired tokens alive for minutes.
	MaxClockSkew = 5 * time.Minute
	// DefaultWSTokenTTL is the lifetime of a WS token.
	DefaultWSTokenTTL = 30 * time.Second
	// MaxWSTokenTTL is the longest WS token lifetime New accepts. A WS token
	// travels in a URL; it should live just long enough to open a socket.
	MaxWSTokenTTL = 5 * time.Minute
	// MinWSTokenSecret is the shortest WS token secret New accepts (HS256,
	// RFC 7518 §3.2).
	MinWSTokenSecret = 32
	// MinRSABits is the smallest RSA modulus accepted for session keys.
	MinRSABits = 2048

	// JWKSRefreshInterval is how often a JWKS URL is fetched again in the
	// background. A key removed from the set stops verifying within about
	// this interval plus a minute.
	JWKSRefreshInterval = 5 * time.Minute
	// JWKSForcedRefreshGap is the shortest time between two fetches forced by
	// a token whose kid is not in the cached set (key rotation).
	JWKSForcedRefreshGap = 10 * time.Second
	// JWKSFetchTimeout bounds one fetch of a JWKS URL.
	JWKSFetchTimeout = 10 * time.Second
	// MaxJWKSBytes is the largest JWKS document accepted, from a file or a URL.
	MaxJWKSBytes = 1 << 20

	// jwksRefreshWindow is how often jwk.Cache looks for due refreshes.
	jwksRefreshWindow = time.Minute
)

// Config configures an Authenticator. The zero value of each field has the
// meaning its comment gives; the session key (exactly one of SessionSecret,
// SessionPublicKeyPEM and SessionJWKS) is the only thing that must be set.
type Config struct {
	// SessionSecret is the shared secret of HS256/HS384/HS512 session
	// tokens. It must be at least as long as the hash of the longest pinned
	// HS algorithm (32, 48 or 64 bytes, RFC 7518 §3.2). Nil when a public
	// key or a JWKS is used.
	SessionSecret []byte
	// SessionPublicKeyPEM is one PEM-encoded public key ("PUBLIC KEY" or
	// "RSA PUBLIC KEY": RSA of at least 2048 bits, EC P-256/P-384/P-521, or
	// Ed25519) that verifies session tokens; the caller reads the file. Nil
	// when a secret or a JWKS is used.
	SessionPublicKeyPEM []byte
	// SessionJWKS is where session verification keys come from: a file path
	// (read once by New) or an https:// URL (fetched by New, then refreshed
	// in the background until Close). Empty when a secret or a public key
	// is used.
	SessionJWKS string
	// SessionAlgs pins the algorithms a session token may use, e.g.
	// ["RS256"]. The token header's alg must be one of them; nothing is
	// inferred from the key or the token. Empty means ["HS256"]. HS* and
	// asymmetric algorithms cannot be mixed.
	SessionAlgs []string
	// SessionIssuer is the required iss claim of session tokens. Empty means
	// iss is not checked.
	SessionIssuer string
	// SessionAudience must be one of the session token's aud values. Empty
	// means aud is not checked (but a session whose aud names "herald-ws" is
	// always refused).
	SessionAudience string
	// UserClaim names the session claim that holds the user id. Empty means
	// "sub".
	UserClaim string
	// ClockSkew is the tolerance applied to exp, nbf and iat of both token
	// kinds. Zero means 5s; negative values and values above MaxClockSkew
	// are refused.
	ClockSkew time.Duration
	// WSTokenSecret is the HS256 secret of WS tokens, shared by all replicas
	// (at least 32 bytes). Nil or empty means a random 32-byte secret for
	// this process, which only works with a single replica. It should differ
	// from SessionSecret.
	WSTokenSecret []byte
	// WSTokenTTL is the lifetime of a WS token, a whole number of seconds.
	// Zero means 30s; more than MaxWSTokenTTL is refused.
	WSTokenTTL time.Duration
	// HTTPClient fetches a JWKS URL. Nil means a client with a 10s timeout.
	// Redirects to non-https URLs are refused whichever client is used.
	HTTPClient *http.Client
	// Logger receives JWKS refresh failures and key set changes; tokens and
	// secrets are never logged. Nil means no logging.
	Logger *zap.Logger
	// Now is the clock used to check and mint tokens and to pace forced JWKS
	// refreshes. Nil means time.Now.
	Now func() time.Time
}

// algInfo describes one supported signature algorithm.
type algInfo struct {
	alg       jwa.SignatureAlgorithm
	hmac      bool
	minSecret int // bytes; HMAC only (RFC 7518 §3.2)
}

// lookupAlg returns the description of a supported algorithm name. The names
// are case-sensitive, as in RFC 7518.
func lookupAlg(name string) (algInfo, bool) {
	switch name {
	case "HS256":
		return algInfo{alg: jwa.HS256, hmac: true, minSecret: 32}, true
	case "HS384":
		return algInfo{alg: jwa.HS384, hmac: true, minSecret: 48}, true
	case "HS512":
		return algInfo{alg: jwa.HS512, hmac: true, minSecret: 64}, true
	case "RS256":
		return algInfo{alg: jwa.RS256}, true
	case "RS384":
		return algInfo{alg: jwa.RS384}, true
	case "RS512":
		return algInfo{alg: jwa.RS512}, true
	case "PS256":
		return algInfo{alg: jwa.PS256}, true
	case "PS384":
		return algInfo{alg: jwa.PS384}, true
	case "PS512":
		return algInfo{alg: jwa.PS512}, true
	case "ES256":
		return algInfo{alg: jwa.ES256}, true
	case "ES384":
		return algInfo{alg: jwa.ES384}, true
	case "ES512":
		return algInfo{alg: jwa.ES512}, true
	case "EdDSA":
		return algInfo{alg: jwa.EdDSA}, true
	}
	return algInfo{}, false
}

const supportedAlgs = "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA"

// sessionSource is the validated origin of session keys: exactly one field is set.
type sessionSource struct {
	secret    []byte // a copy of Config.SessionSecret
	publicKey any    // parsed from Config.SessionPublicKeyPEM
	jwksURL   string
	jwksFile  string
}

// settings is a Config with its defaults filled in and its values checked.
type settings struct {
	algs      []jwa.SignatureAlgorithm
	hmac      bool // the pinned algorithms are HS*
	source    sessionSource
	issuer    string
	audience  string
	userClaim string
	skew      time.Duration
	wsSecret  []byte // nil: New draws a random one
	wsTTL     time.Duration
	client    *http.Client
	log       *zap.Logger
	now       func() time.Time

	// jwksRefresh and jwksWindow are JWKSRefreshInterval and
	// jwksRefreshWindow; tests shorten them.
	jwksRefresh time.Duration
	jwksWindow  time.Duration
}

// withDefaults returns cfg with every zero field replaced by its default.
func (cfg Config) withDefaults() Config {
	if len(cfg.SessionAlgs) == 0 {
		cfg.SessionAlgs = []string{DefaultSessionAlg}
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = DefaultUserClaim
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	}
	if cfg.WSTokenTTL == 0 {
		cfg.WSTokenTTL = DefaultWSTokenTTL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: JWKSFetchTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// validate checks a Config whose defaults are filled in and refuses unsafe
// or contradictory settings. It does no I/O: a JWKS is read later.
func (cfg Config) validate() (settings, error) {
	s := settings{
		issuer:    cfg.SessionIssuer,
		audience:  cfg.SessionAudience,
		userClaim: cfg.UserClaim,
		skew:      cfg.ClockSkew,
		wsTTL:     cfg.WSTokenTTL,
		client:    cfg.HTTPClient,
		log:       cfg.Logger,
		now:       cfg.Now,

		jwksRefresh: JWKSRefreshInterval,
		jwksWindow:  jwksRefreshWindow,
	}

	// Pinned algorithms.
	var hmacAlgs, asymAlgs []string
	minSecret, minSecretAlg := 0, ""
	for _, name := range cfg.SessionAlgs {
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, "none") {
			return s, fmt.Errorf("auth: session alg %q is refused: unsigned tokens are never accepted", name)
		}
		info, ok := lookupAlg(name)
		if !ok {
			return s, fmt.Errorf("auth: unknown session alg %q (supported, case-sensitive: %s)", name, supportedAlgs)
		}
		if slices.Contains(s.algs, info.alg) {
			continue
		}
		s.algs = append(s.algs, info.alg)
		if info.hmac {
			hmacAlgs = append(hmacAlgs, name)
			if info.minSecret > minSecret {
				minSecret, minSecretAlg = info.minSecret, name
			}
		} else {
			asymAlgs = append(asymAlgs, name)
		}
	}
	if len(hmacAlgs) > 0 && len(asymAlgs) > 0 {
		return s, fmt.Errorf("auth: session algs mix HMAC (%s) and public-key (%s) algorithms; pin one kind, "+
			"or a public key could be used as an HMAC secret", strings.Join(hmacAlgs, ", "), strings.Join(asymAlgs, ", "))
	}
	s.hmac = len(hmacAlgs) > 0

	// Exactly one key source.
	var given []string
	if cfg.SessionSecret != nil {
		given = append(given, "a session secret")
	}
	if cfg.SessionPublicKeyPEM != nil {
		given = append(given, "a session public key")
	}
	if cfg.SessionJWKS != "" {
		given = append(given, "a session JWKS")
	}
	switch len(given) {
	case 0:
		return s, fmt.Errorf("auth: no session key: give a session secret (HS*), a session public key or a session JWKS")
	case 1:
	default:
		return s, fmt.Errorf("auth: %s are given; give exactly one session key source", strings.Join(given, " and "))
	}

	switch {
	case cfg.SessionSecret != nil:
		if !s.hmac {
			return s, fmt.Errorf("auth: a session secret is given but the session algs (%s) need a public key or a JWKS",
				strings.Join(asymAlgs, ", "))
		}
		if n := len(cfg.SessionSecret); n < minSecret {
			return s, fmt.Errorf("auth: session secret is %d bytes; %s needs at least %d bytes (%d bits) of secret, see RFC 7518 §3.2",
				n, minSecretAlg, minSecret, minSecret*8)
		}
		s.source.secret = slices.Clone(cfg.SessionSecret)
	case cfg.SessionPublicKeyPEM != nil:
		if s.hmac {
			return s, fmt.Errorf("auth: a session public key is given but the session algs (%s) are HMAC; "+
				"pin the key's algorithm (e.g. RS256, ES256, EdDSA)", strings.Join(hmacAlgs, ", "))
		}
		key, err := parsePublicKeyPEM(cfg.SessionPublicKeyPEM)
		if err != nil {
			return s, fmt.Errorf("auth: session public key: %w", err)
		}
		for _, alg := range s.algs {
			if !keyFitsAlg(key, alg) {
				return s, fmt.Errorf("auth: session public key is %s, which cannot verify pinned alg %s", describeKey(key), alg)
			}
		}
		s.source.publicKey = key
	default:
		if s.hmac {
			return s, fmt.Errorf("auth: a session JWKS is given but the session algs (%s) are HMAC; "+
				"a JWKS carries public keys: pin their algorithms (e.g. RS256)", strings.Join(hmacAlgs, ", "))
		}
		if strings.Contains(cfg.SessionJWKS, "://") {
			u, err := url.Parse(cfg.SessionJWKS)
			if err != nil {
				return s, fmt.Errorf("auth: session JWKS URL %s does not parse: %w", redact.URL(cfg.SessionJWKS), redact.Error(err, cfg.SessionJWKS))
			}
			if u.Scheme != "https" {
				return s, fmt.Errorf("auth: session JWKS URL scheme is %q; only https is accepted, "+
					"so that keys cannot be swapped in transit", u.Scheme)
			}
			if u.Host == "" {
				return s, fmt.Errorf("auth: session JWKS URL has no host")
			}
			s.source.jwksURL = u.String()
		} else {
			s.source.jwksFile = cfg.SessionJWKS
		}
	}

	// Claims.
	if cfg.SessionAudience == WSAudience {
		return s, fmt.Errorf("auth: session audience %q is reserved for WS tokens", WSAudience)
	}

	// Clock skew and WS tokens.
	if cfg.ClockSkew < 0 || cfg.ClockSkew > MaxClockSkew {
		return s, fmt.Errorf("auth: clock skew %s is outside [0, %s]", cfg.ClockSkew, MaxClockSkew)
	}
	if cfg.WSTokenTTL < time.Second || cfg.WSTokenTTL > MaxWSTokenTTL {
		return s, fmt.Errorf("auth: WS token TTL %s is outside [1s, %s]", cfg.WSTokenTTL, MaxWSTokenTTL)
	}
	if cfg.WSTokenTTL%time.Second != 0 {
		return s, fmt.Errorf("auth: WS token TTL %s is not a whole number of seconds (JWT times are in seconds)", cfg.WSTokenTTL)
	}
	if n := len(cfg.WSTokenSecret); n > 0 {
		if n < MinWSTokenSecret {
			return s, fmt.Errorf("auth: WS token secret is %d bytes; HS256 needs at least %d bytes (%d bits) of secret, see RFC 7518 §3.2",
				n, MinWSTokenSecret, MinWSTokenSecret*8)
		}
		s.wsSecret = slices.Clone(cfg.WSTokenSecret)
	}
	return s, nil
}
