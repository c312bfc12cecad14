package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

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
			r, end := classify(b, 0)
			if r != tt.want {
				t.Fatalf("route = %v, want %v", r, tt.want)
			}
			if r == routeUpgrade && string(b[end:]) != tt.early {
				t.Fatalf("after the request: %q, want %q", b[end:], tt.early)
			}
			for n := 0; n < len(b); n++ {
				switch got, _ := classify(b[:n], 0); {
				case got == routeMore:
				case got != tt.want:
					t.Fatalf("%d bytes %q route %v, the whole request %v", n, b[:n], got, tt.want)
				case got == routeUpgrade && tt.early == "":
					t.Fatalf("%d bytes %q: an upgrade before its blank line", n, b[:n])
				}
			}
			// Read a byte at a time, each read resuming where the last left.
			for n := 1; n <= len(b); n++ {
				got, gotEnd := classify(b[:n], n-1)
				if got == routeMore {
					continue
				}
				if got != r || got == routeUpgrade && gotEnd != end {
					t.Fatalf("a byte at a time: route %v end %d at %d bytes, want %v end %d", got, gotEnd, n, r, end)
				}
				break
			}
		})
	}
}

// TestFirstReadAfterStopAccept: a connection accepted just before Shutdown
// stopped accepting, whose first read starts only after, ends at once: it
// does not hold Shutdown (which waits for the first reads) for the header
// timeout.
func TestFirstReadAfterStopAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{http: &http.Server{ReadHeaderTimeout: time.Hour}}
	if !s.reading.add(nc, time.Now().Add(time.Hour)) { // the accept loop's part
		t.Fatal("add refused before close")
	}
	s.reading.close() // Shutdown, before the connection's first read starts
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.firstRead(nc, newHandoffListener(ln))
	}()
	// The guard is far below the header timeout and far above any machine's
	// scheduling delay: the connection must be closed, not left reading.
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("client read: %v, want EOF (the server closed the connection)", err)
	}
	<-done
	s.reading.wait()
}

// trickleConn is a client that sends its request one byte per read, as a
// slow client's segments arrive.
type trickleConn struct {
	net.Conn
	data []byte
}

func (c *trickleConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:1], c.data)
	c.data = c.data[n:]
	return n, nil
}
func (c *trickleConn) SetReadDeadline(time.Time) error { return nil }
func (c *trickleConn) Close() error                    { return nil }

// BenchmarkFirstReadTrickle is the demux's cost of a GET /ws whose header
// (16 KiB of short lines, never ended) arrives one byte per read: what a
// slow client costs the replica's CPU.
func BenchmarkFirstReadTrickle(b *testing.B) {
	req := []byte("GET /ws HTTP/1.1\r\n")
	for len(req) < maxUpgradeHeader {
		req = append(req, "a:\n"...)
	}
	s := &Server{http: &http.Server{ReadHeaderTimeout: time.Hour}}
	toHTTP := newHandoffListener(nil)
	toHTTP.fail(net.ErrClosed) // the connection is closed once the demux hands it on
	b.ReportAllocs()
	for b.Loop() {
		c := &trickleConn{data: req}
		s.reading.add(c, time.Time{})
		s.firstRead(c, toHTTP)
	}
}
