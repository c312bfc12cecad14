package gateway_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestOriginPorts pins the port rule of allowed origins: an entry without a
// port allows the scheme's default port only (443 for https, 80 for http),
// an entry with a port allows that port only, wildcard or not; a default
// port written out is the same as none.
func TestOriginPorts(t *testing.T) {
	testenv.NoLeaks(t)
	h := start(t, harnessOpts{gw: func(c *gateway.Config) {
		c.AllowedOrigins = []string{
			"https://*.corp.test",
			"https://*.example.com:8443",
			"https://app.example.org:443",
			"http://*.dev.test",
			"https://api.example.net:9000",
		}
	}})
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://a.corp.test", true},
		{"https://a.corp.test:443", true},
		{"https://a.corp.test:8443", false},
		{"https://a.b.corp.test", true},
		{"https://corp.test", false},
		{"https://a.example.com:8443", true},
		{"https://a.example.com", false},
		{"https://a.example.com:9443", false},
		{"https://app.example.org", true},
		{"https://app.example.org:8443", false},
		{"http://x.dev.test", true},
		{"http://x.dev.test:80", true},
		{"http://x.dev.test:8080", false},
		{"https://x.dev.test", false},
		{"https://api.example.net:9000", true},
		{"https://api.example.net", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, h.base+"/api/ws/token", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.StatusCode == http.StatusNoContent; got != tt.want {
				t.Errorf("allowed = %v (status %d), want %v", got, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestOriginBadPortRefused(t *testing.T) {
	for _, o := range []string{"https://*.example.com:0", "https://*.example.com:99999", "https://app.example.com:x"} {
		_, err := gateway.New(gateway.Config{AllowedOrigins: []string{o}})
		if err == nil || !strings.Contains(err.Error(), "allowed origin") {
			t.Errorf("%s: got %v, want an error about the allowed origin", o, err)
		}
	}
}
