package gateway

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// The listener's demux. Serve accepts the connections itself and reads the
// first bytes of each: a WebSocket upgrade (GET /ws) is served without
// net/http (rawws.go), everything else (the token endpoint, health,
// metrics, the demo) goes on to net/http on the same listener, the bytes
// already read replayed first. A connection is read by a goroutine of its
// own only until its request is complete; an upgrade waiting for admission
// then holds no goroutine.

// maxUpgradeHeader bounds the request an upgrade is read into. A larger
// one (a browser with many cookies) goes on to net/http, which serves it
// as before.
const maxUpgradeHeader = 16 << 10

// route is what the demux makes of the bytes read so far.
type route int

const (
	routeMore    route = iota // not enough to tell
	routeHTTP                 // not an upgrade of /ws: net/http serves it
	routeUpgrade              // GET /ws with its whole header
)

var getWS = []byte("GET /ws")

// classify routes a connection by its first bytes b. With routeUpgrade,
// end is the length of the request (its header and the blank line); the
// bytes after it were sent before the response. b[:from] was classified
// before, as routeMore: its lines are not searched again, so that a client
// sending its header a byte at a time costs linear time, not quadratic.
func classify(b []byte, from int) (r route, end int) {
	n := min(len(b), len(getWS))
	if !bytes.Equal(b[:n], getWS[:n]) {
		return routeHTTP, 0
	}
	if len(b) == n { // a prefix of "GET /ws" so far
		return routeMore, 0
	}
	if c := b[n]; c != ' ' && c != '?' { // GET /wsx, GET /ws/
		return routeHTTP, 0
	}
	if end = headerEnd(b, from); end < 0 {
		return routeMore, 0
	}
	return routeUpgrade, end
}

// headerEnd returns the length of the request header in b up to and with
// its blank line ("\n\r\n" or "\n\n" after the last header line), or -1.
// b[:from] holds no blank line: the search starts at its last two bytes,
// which may begin one.
func headerEnd(b []byte, from int) int {
	for i := max(0, from-2); ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// readBufs holds the buffers connections' first bytes are read into.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 4<<10); return &b }}

// acceptLoop accepts connections on ln until it fails or closes, and
// starts each one's first read.
func (s *Server) acceptLoop(ln net.Listener, toHTTP *handoffListener) error {
	var wait time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				wait = min(max(2*wait, 5*time.Millisecond), time.Second)
				time.Sleep(wait)
				continue
			}
			return err
		}
		wait = 0
		if !s.reading.add(nc, time.Now().Add(s.http.ReadHeaderTimeout)) {
			nc.Close() // stopped accepting
			continue
		}
		go s.firstRead(nc, toHTTP)
	}
}

// firstRead reads a new connection until its route is known and passes it
// on: an upgrade to serveUpgrade, anything else to net/http.
func (s *Server) firstRead(nc net.Conn, toHTTP *handoffListener) {
	defer s.reading.done(nc)
	bp := readBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) == cap(*bp) {
			readBufs.Put(bp)
		}
	}()
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= maxUpgradeHeader {
				break // too large for the upgrade path: net/http reads on
			}
			buf = append(make([]byte, 0, min(2*cap(buf), maxUpgradeHeader)), buf...)
		}
		from := len(buf)
		n, err := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		r, end := classify(buf, from)
		if r == routeUpgrade {
			_ = nc.SetReadDeadline(time.Time{})
			// Counted before its first read ends, so that Shutdown,
			// which waits for both, misses no handshake.
			s.live.Add(1)
			s.reading.done(nc)
			s.serveUpgrade(nc, buf[:end], buf[end:])
			return
		}
		if r == routeHTTP {
			break
		}
		if err != nil { // closed, reset or timed out before a whole request: as net/http does
			nc.Close()
			return
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	s.reading.done(nc) // net/http's from here: Shutdown's end of the reads must not touch it
	toHTTP.hand(&prefixConn{Conn: nc, prefix: bytes.Clone(buf)})
}

// prefixConn is a connection whose first bytes, already read, are read
// again first.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// SyscallConn exposes the connection's descriptor, for an upgrade that
// net/http serves (a header too large for the demux): the socket core
// takes the descriptor once net/http has read the request, the prefix
// with it.
func (c *prefixConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("gateway: connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// handoffListener is the listener net/http serves: the connections the
// demux hands it. Closing it closes the real listener.
type handoffListener struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error // written before done is closed
}

func newHandoffListener(ln net.Listener) *handoffListener {
	return &handoffListener{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// hand gives c to net/http, or closes it once net/http is gone.
func (l *handoffListener) hand(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// fail ends Accept with err.
func (l *handoffListener) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

func (l *handoffListener) Close() error {
	l.fail(net.ErrClosed)
	err := l.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func (l *handoffListener) Addr() net.Addr { return l.ln.Addr() }

// readers are the connections in their first read. Once closed, it takes
// no more, and those in it stop reading at once.
type readers struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	idle   *sync.Cond            // signalled when conns empties
}

// add takes c, with the read deadline of its first read: set under mu, so
// that a close that comes before the first read starts still ends it.
func (r *readers) add(c net.Conn, deadline time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	_ = c.SetReadDeadline(deadline)
	if r.conns == nil {
		r.conns = make(map[net.Conn]struct{})
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *readers) done(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	if len(r.conns) == 0 && r.idle != nil {
		r.idle.Broadcast()
	}
}

// close stops taking connections and ends the reads in progress.
func (r *readers) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	past := time.Unix(1, 0)
	for c := range r.conns {
		_ = c.SetReadDeadline(past)
	}
}

// wait returns when no connection is in its first read.
func (r *readers) wait() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.idle == nil {
		r.idle = sync.NewCond(&r.mu)
	}
	for len(r.conns) > 0 {
		r.idle.Wait()
	}
}

// serveDemux is Serve with the demux: it returns when the listener closes
// (nil after a Shutdown) or fails.
func (s *Server) serveDemux(bl net.Listener) error {
	toHTTP := newHandoffListener(bl)
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(toHTTP) }()
	err := s.acceptLoop(bl, toHTTP)
	s.reading.close()
	s.reading.wait()
	select {
	case <-s.quit:
		err = nil
	default:
		s.log.Error("accept failed", zap.Error(err))
		toHTTP.fail(err)
	}
	if herr := <-served; err == nil && herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		err = herr
	}
	return err
}
