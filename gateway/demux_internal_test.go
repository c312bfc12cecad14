package gateway

import "testing"

// TestClassify: every prefix of a request routes as the whole request does,
// or waits for more.
func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		request string
		want    route
		early   string // with routeUpgrade: what follows the request
	}{
		{"upgrade", "GET /ws?token=t HTTP/1.1\r\nHost: x\r\n\r\n", routeUpgrade, ""},
		{"upgrade without a query", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", routeUpgrade, ""},
		{"upgrade with a frame behind it", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n\x81\x80abcd", routeUpgrade, "\x81\x80abcd"},
		{"bare line feeds", "GET /ws HTTP/1.1\nHost: x\n\n", routeUpgrade, ""},
		{"token endpoint", "POST /api/ws/token HTTP/1.1\r\nHost: x\r\n\r\n", routeHTTP, ""},
		{"health", "GET /healthz HTTP/1.1\r\n\r\n", routeHTTP, ""},
		{"longer path", "GET /wss HTTP/1.1\r\n\r\n", routeHTTP, ""},
		{"sub path", "GET /ws/x HTTP/1.1\r\n\r\n", routeHTTP, ""},
		{"lower case method", "get /ws HTTP/1.1\r\n\r\n", routeHTTP, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.request)
			r, end := classify(b)
			if r != tt.want {
				t.Fatalf("route = %v, want %v", r, tt.want)
			}
			if r == routeUpgrade && string(b[end:]) != tt.early {
				t.Fatalf("after the request: %q, want %q", b[end:], tt.early)
			}
			for n := 0; n < len(b); n++ {
				switch got, _ := classify(b[:n]); {
				case got == routeMore:
				case got != tt.want:
					t.Fatalf("%d bytes %q route %v, the whole request %v", n, b[:n], got, tt.want)
				case got == routeUpgrade && tt.early == "":
					t.Fatalf("%d bytes %q: an upgrade before its blank line", n, b[:n])
				}
			}
		})
	}
}
