package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which browser origins may use herald cross-origin.
type originPolicy struct {
	exact    map[string]bool // "https://app.example.com"
	suffixes []originSuffix  // "https://*.example.com"
}

type originSuffix struct{ scheme, suffix string } // suffix ".example.com"

func newOriginPolicy(allowed []string) (*originPolicy, error) {
	p := &originPolicy{exact: make(map[string]bool)}
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
		if rest, ok := strings.CutPrefix(u.Host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("allowed origin %q: a wildcard stands for one leading label only", raw)
			}
			p.suffixes = append(p.suffixes, originSuffix{u.Scheme, "." + rest})
			continue
		}
		if strings.Contains(u.Host, "*") {
			return nil, fmt.Errorf("allowed origin %q: a wildcard stands for one leading label only", raw)
		}
		p.exact[u.Scheme+"://"+u.Host] = true
	}
	return p, nil
}

// check reports whether r may proceed (no Origin, the request's own host, or
// an allowed origin) and whether the response needs CORS headers.
func (p *originPolicy) check(r *http.Request) (ok, cors bool) {
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
	if p.exact[u.Scheme+"://"+u.Host] {
		return true, true
	}
	host := u.Hostname()
	for _, s := range p.suffixes {
		if s.scheme == u.Scheme && strings.HasSuffix(host, s.suffix) && len(host) > len(s.suffix) {
			return true, true
		}
	}
	return false, false
}
