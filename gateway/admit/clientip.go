package admit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client behind r. X-Forwarded-For is
// believed only when the TCP peer is a trusted proxy; then the address is the
// right-most one in the chain that is not itself a trusted proxy. An entry
// may carry a port ("198.51.100.7:5555", "[2001:db8::7]:443"), as some load
// balancers write it. An entry that does not parse ends the walk and is
// returned as it is (clipped): it is never the trusted proxy's own, exempt,
// address, so a malformed chain cannot switch failed-auth blocking off.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(peer, trusted) {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			hop := strings.TrimSpace(parts[j])
			a, ok := parseHop(hop)
			if !ok {
				return hop[:min(len(hop), 64)] // logged: bounded
			}
			if !isTrusted(a, trusted) {
				return a.String()
			}
		}
	}
	return peer.String()
}

// parseHop parses one X-Forwarded-For entry: an address, an address with a
// port, or a bracketed IPv6 address with or without a port. The address
// comes back unmapped and without a zone.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
				return netip.Addr{}, false
			}
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		} else {
			a = ap.Addr()
		}
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
