//go:build linux

package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// poller reads a share of a worker's sockets with one epoll instance and one
// goroutine, so that an idle socket costs no goroutine and no buffer. It
// owns its sockets' state: every change happens under mu, the epoll_ctl
// calls and the closing of a connection included. The loop holds mu while
// it handles a batch of ready sockets; other goroutines (the connect path,
// phase commands) take it to register, close or inspect sockets.
type poller struct {
	f    *Fleet
	epfd int

	mu    sync.Mutex
	all   []*Socket         // every socket of this poller; set before the loop starts, never changed
	socks map[int32]*Socket // registered sockets by fd; guarded by mu
	t     *tally            // guarded by mu
	rng   *rand.Rand        // guarded by mu
	wbuf  []byte            // frame scratch; guarded by mu

	total uint64 // fan-out frames received over the whole run; guarded by mu

	buf  []byte        // read buffer; owned by the loop
	done chan struct{} // closed when the loop returns
}

const (
	evRead = unix.EPOLLIN | unix.EPOLLRDHUP
	evSlow = unix.EPOLLRDHUP // a socket we do not read: only its hang-up
)

func newPoller(f *Fleet, seed uint64) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return &poller{
		f:     f,
		epfd:  epfd,
		socks: map[int32]*Socket{},
		t:     newTally(),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		buf:   make([]byte, 64<<10),
		done:  make(chan struct{}),
	}, nil
}

// run waits for readiness until stop is closed.
func (p *poller) run(stop <-chan struct{}) {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.f.Fail(fmt.Errorf("epoll_wait: %w", err))
			return
		}
		if n <= 0 {
			continue
		}
		p.mu.Lock()
		now := time.Now()
		for i := range n {
			s := p.socks[events[i].Fd]
			if s == nil {
				continue
			}
			if s.state == sockSlow && events[i].Events&evRead == unix.EPOLLRDHUP {
				// The server hung up on a socket we were not reading: read
				// what it left, to find its close frame.
				p.ctlLocked(s, unix.EPOLL_CTL_MOD, evRead)
			}
			p.readLocked(s, now)
		}
		p.mu.Unlock()
	}
}

// close releases the epoll instance; the loop must have returned.
func (p *poller) close() { unix.Close(p.epfd) }

func (p *poller) ctlLocked(s *Socket, op int, events uint32) {
	ev := unix.EpollEvent{Events: events, Fd: int32(s.fd)}
	_ = unix.EpollCtl(p.epfd, op, s.fd, &ev)
}

// takeFD turns a connection into a bare descriptor: a duplicate of its
// socket, after which conn is closed. Go's poller forgets the socket (its
// close deregisters it) and the connection stays open through the
// duplicate, so only our epoll instance sees its events and no net.Conn is
// kept per socket. The descriptor stays non-blocking (the flag belongs to
// the open socket, which both share).
func takeFD(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, errors.New("connection has no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	_ = conn.Close()
	return fd, nil
}

// register hands a welcomed connection to the poller. pend holds bytes read
// after the welcome frame, inboxID the welcome's inbox_id (if any). The session's accounting starts now: messages
// numbered after the user's current seq must all arrive. conn is closed
// whatever happens.
func (p *poller) register(s *Socket, conn net.Conn, pend []byte, inboxID string, took time.Duration) error {
	fd, err := takeFD(conn)
	if err != nil {
		conn.Close()
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f.stopping.Load() {
		unix.Close(fd)
		return errStopping
	}
	s.open, s.fd, s.state = true, fd, sockUp
	s.startSeq = s.user.assigned.Load()
	s.maxSeq, s.window, s.got = s.startSeq, 0, 0
	s.after = -1
	s.pend = nil
	s.fragging = false
	if inboxID != "" {
		s.inboxID = inboxID
	}
	if s.track != nil {
		s.track.sess = 0
	}
	p.socks[int32(fd)] = s
	p.ctlLocked(s, unix.EPOLL_CTL_ADD, evRead)
	p.t.handshakes++
	p.t.handshake.Record(took)
	p.t.hsWindow.Record(took)
	p.f.up.Add(1)
	p.f.lastUp.Store(time.Now().UnixNano())
	p.f.welcomed.Add(1)
	if len(pend) > 0 {
		p.consumeLocked(s, append([]byte(nil), pend...), time.Now())
	}
	return nil
}

var errStopping = errors.New("the run is stopping")

// readLocked reads once from s and handles every whole frame.
func (p *poller) readLocked(s *Socket, now time.Time) {
	n, err := unix.Read(s.fd, p.buf)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return
		}
		p.endLocked(s, 1006, "reset", false)
		return
	}
	if n == 0 {
		p.endLocked(s, 1006, "eof", false)
		return
	}
	data := p.buf[:n]
	if len(s.pend) > 0 {
		data = append(s.pend, data...)
		s.pend = nil
	}
	p.consumeLocked(s, data, now)
}

// consumeLocked handles the whole frames in data and keeps the rest.
func (p *poller) consumeLocked(s *Socket, data []byte, now time.Time) {
	for s.open {
		h, payload, n, err := nextFrame(data)
		if err != nil {
			p.endLocked(s, 1002, "server_protocol_error", false)
			return
		}
		if n == 0 {
			if len(data) > 0 {
				s.pend = append([]byte(nil), data...)
			}
			return
		}
		data = data[n:]
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if !h.Fin {
				s.frag, s.fragging = append(s.frag[:0], payload...), true
				continue
			}
			p.textLocked(s, payload, now)
		case ws.OpContinuation:
			if !s.fragging {
				p.endLocked(s, 1002, "server_protocol_error", false)
				return
			}
			s.frag = append(s.frag, payload...)
			if h.Fin {
				s.fragging = false
				p.textLocked(s, s.frag, now)
			}
		case ws.OpPing:
			p.writeLocked(s, ws.OpPong, payload)
		case ws.OpClose:
			code, _ := parseClose(payload)
			p.writeLocked(s, ws.OpClose, payload[:min(len(payload), 2)])
			if s.open {
				p.endLocked(s, code, "close_"+strconv.Itoa(code), true)
			}
			return
		}
	}
}

// writeLocked sends one small masked frame. A socket whose kernel buffer
// cannot take a few bytes is broken: it is dropped.
func (p *poller) writeLocked(s *Socket, op ws.OpCode, payload []byte) {
	if !s.open {
		return
	}
	p.wbuf = appendClientFrame(p.wbuf[:0], op, payload, p.rng)
	n, err := unix.Write(s.fd, p.wbuf)
	if err != nil || n != len(p.wbuf) {
		if op != ws.OpClose {
			p.endLocked(s, 1006, "client_write_failed", false)
		}
	}
}

// endLocked ends s's session: it settles its messages (those after the
// last one received cannot be told lost), closes the connection and applies
// the reconnect policy for code. byServer says the server sent code.
func (p *poller) endLocked(s *Socket, code int, why string, byServer bool) {
	if !s.open {
		return
	}
	wasSlow := s.state == sockSlow
	if s.state == sockUp {
		s.settle(s.maxSeq, p.t)
	}
	p.ctlLocked(s, unix.EPOLL_CTL_DEL, 0)
	delete(p.socks, int32(s.fd))
	_ = unix.Close(s.fd)
	s.open, s.fd, s.pend, s.frag = false, -1, nil, nil
	s.state = sockDown
	p.f.up.Add(-1)
	if wasSlow {
		p.f.slowNow.Add(-1)
		s.user.flooding.Store(false)
		if byServer || code == 1006 {
			// Shed: herald closed it (4009 when the close frame got
			// through, else the connection just ends behind the data).
			p.t.shed++
		}
		why = "slow_" + why
	}
	p.t.closed[why]++
	if p.f.stopping.Load() {
		s.state = sockGone
		p.f.gone.Add(1)
		return
	}
	p.f.pending.Add(1) // under mu: shutdown waits for pending only after taking every mu
	go p.f.afterClose(s, code, byServer, s.after)
}

// clientCloseLocked closes s as a browser tab would (close frame 1000), and
// reconnects it at once with a fresh token when reconnect is set.
func (p *poller) clientCloseLocked(s *Socket, reason string, reconnect bool) {
	if !s.open {
		return
	}
	p.writeLocked(s, ws.OpClose, ws.NewCloseFrameBody(1000, reason))
	if s.state == sockUp {
		s.settle(s.maxSeq, p.t)
	}
	if s.state == sockSlow {
		p.f.slowNow.Add(-1)
		s.user.flooding.Store(false)
	}
	p.ctlLocked(s, unix.EPOLL_CTL_DEL, 0)
	delete(p.socks, int32(s.fd))
	_ = unix.Close(s.fd)
	s.open, s.fd, s.pend, s.frag = false, -1, nil, nil
	s.state = sockDown
	p.f.up.Add(-1)
	p.t.closed["client_"+reason]++
	if !reconnect || p.f.stopping.Load() {
		s.state = sockGone
		p.f.gone.Add(1)
		return
	}
	p.f.pending.Add(1)
	go p.f.reconnect(s)
}

// markSlowLocked stops reading s. Its session is settled now: what it does
// not read is not lost, it is what the scenario withholds.
func (p *poller) markSlowLocked(s *Socket) {
	if s.state != sockUp {
		return
	}
	s.settle(s.maxSeq, p.t)
	s.state = sockSlow
	p.f.slowNow.Add(1)
	s.user.flooding.Store(true)
	p.ctlLocked(s, unix.EPOLL_CTL_MOD, evSlow)
}

// wakeLocked reads a slow socket again. Megabytes may wait behind the
// close frame of a shed socket: its receive window opens first.
func (p *poller) wakeLocked(s *Socket) {
	if s.state != sockSlow {
		return
	}
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	p.ctlLocked(s, unix.EPOLL_CTL_MOD, evRead)
}
