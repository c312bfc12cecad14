package testenv

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a loopback TCP proxy in front of one target, for fault tests. It
// forwards bytes both ways until told to misbehave:
//
//   - DropAfterForward: the next client chunk containing a marker is
//     forwarded to the target, the target's answer is swallowed and both
//     connections are closed: the client sees its connection drop after
//     the server ran its command.
//   - Blackhole: nothing is forwarded in either direction, and nothing is
//     closed (no RST, no FIN), as when a peer vanishes from the network.
//
// It is closed when the test ends, with every connection it holds.
type Proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	blackhole atomic.Bool
	dropMu    sync.Mutex
	dropOn    []byte // guarded by dropMu; nil: none armed
	dropLeft  int    // guarded by dropMu
	dropped   atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	wg     sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards to target.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &Proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr is host:port of the proxy.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DropAfterForward arms the proxy for n client chunks containing marker:
// each is forwarded, the answer swallowed and the connection dropped.
func (p *Proxy) DropAfterForward(marker []byte, n int) {
	p.dropMu.Lock()
	defer p.dropMu.Unlock()
	p.dropOn, p.dropLeft = bytes.Clone(marker), n
}

// Dropped is how many connections DropAfterForward has dropped.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Blackhole stops (on) or resumes (off) forwarding in both directions.
// Bytes that arrive while it is on are discarded.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// Close stops the proxy and closes every connection it holds.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			client.Close()
			server.Close()
			return
		}
		var swallow atomic.Bool // set when the next answer must be dropped
		p.wg.Add(2)
		go p.pipe(client, server, &swallow, true)
		go p.pipe(server, client, &swallow, false)
	}
}

// pipe copies from src to dst until either side closes. upstream is the
// client-to-target direction.
func (p *Proxy) pipe(src, dst net.Conn, swallow *atomic.Bool, upstream bool) {
	defer p.wg.Done()
	defer p.untrack(dst)
	defer p.untrack(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackhole.Load() {
			chunk := buf[:n]
			switch {
			case upstream && p.armed(chunk):
				swallow.Store(true)
			case !upstream && swallow.Load():
				// The target answered the marked command: the client
				// never sees it, its connection just drops.
				p.dropped.Add(1)
				return
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// armed reports whether chunk must be forwarded and its answer dropped, and
// counts it.
func (p *Proxy) armed(chunk []byte) bool {
	p.dropMu.Lock()
	defer p.dropMu.Unlock()
	if p.dropLeft <= 0 || p.dropOn == nil || !bytes.Contains(chunk, p.dropOn) {
		return false
	}
	p.dropLeft--
	return true
}
