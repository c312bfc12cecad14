package admit

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins over a spoofed left part", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"chain of trusted proxies", "127.0.0.1:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several header lines", "10.1.2.3:5000", []string{"1.1.1.1", "198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"only trusted hops", "10.1.2.3:5000", []string{"10.4.4.4"}, "10.1.2.3"},
		{"garbage in the chain is not the exempt proxy", "10.1.2.3:5000", []string{"198.51.100.1, not-an-ip"}, "not-an-ip"},
		{"ip:port from a cloud balancer", "10.1.2.3:5000", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"[v6]:port", "10.1.2.3:5000", []string{"1.1.1.1, [2001:db8::7]:443"}, "2001:db8::7"},
		{"bracketed v6 without a port", "10.1.2.3:5000", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"trusted ip:port hop is skipped", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9:80"}, "198.51.100.1"},
		{"ipv6 client", "10.1.2.3:5000", []string{"2001:db8::1"}, "2001:db8::1"},
		{"ipv4-mapped peer", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, trusted); got != tt.want {
				t.Errorf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}
