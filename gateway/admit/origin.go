package admit

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Origins decides which browser origins may use herald cross-origin.
//
// The port rule: an entry without a port allows the scheme's default port
// only (443 for https, 80 for http), an entry with a port allows that port
// only, for exact entries and wildcards alike. A default port written out
// (":443" on https) is the same as none, in entries and in Origin headers.
type Origins struct {
	exact    map[string]bool // "https://app.example.com", "https://app.example.com:8443"
	suffixes []originSuffix  // "https://*.example.com", "https://*.example.com:8443"
}

// originSuffix is a wildcard entry: scheme, the suffix after "*" (with its
// leading dot) and the port ("" for the scheme's default).
type originSuffix struct{ scheme, suffix, port string }

// canonicalPort returns port, or "" when it is scheme's default port.
func canonicalPort(scheme, port string) string {
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return ""
	}
	return port
}

// validPort reports whether port is empty or a number from 1 to 65535.
func validPort(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == port
}

func NewOrigins(allowed []string) (*Origins, error) {
	p := &Origins{exact: make(map[string]bool)}
	for _, raw := range allowed {
		o := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
		if o == "" {
			continue
		}
		if o == "*" {
			return nil, fmt.Errorf("allowed origin %q: herald sends credentials, so list the origins (a wildcard may only stand for subdomains: https://*.example.com)", raw)
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port], like https://app.example.com", raw)
		}
		host, port := u.Hostname(), u.Port()
		if !validPort(port) || strings.HasSuffix(u.Host, ":") {
			return nil, fmt.Errorf("allowed origin %q: the port must be a number from 1 to 65535", raw)
		}
		port = canonicalPort(u.Scheme, port)
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("allowed origin %q: a wildcard stands for one leading label only", raw)
			}
			p.suffixes = append(p.suffixes, originSuffix{u.Scheme, "." + rest, port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("allowed origin %q: a wildcard stands for one leading label only", raw)
		}
		p.exact[originKey(u.Scheme, host, port)] = true
	}
	return p, nil
}

// Check reports whether r may proceed (no Origin, the request's own host, or
// an allowed origin) and whether the response needs CORS headers.
func (p *Origins) Check(r *http.Request) (ok, cors bool) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true, false
	}
	u, err := url.Parse(strings.ToLower(origin))
	if err != nil || u.Host == "" {
		return false, false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true, false
	}
	host, port := u.Hostname(), canonicalPort(u.Scheme, u.Port())
	if p.exact[originKey(u.Scheme, host, port)] {
		return true, true
	}
	for _, s := range p.suffixes {
		if s.scheme == u.Scheme && s.port == port && strings.HasSuffix(host, s.suffix) && len(host) > len(s.suffix) {
			return true, true
		}
	}
	return false, false
}

// originKey is the exact-match key of an origin whose port is canonical.
func originKey(scheme, host, port string) string {
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
