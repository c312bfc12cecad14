//go:build linux

package wscore

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller is one epoll instance and the goroutine that waits on it. Sockets
// are registered level-triggered for input; output readiness is watched only
// while a socket's queue is stuck on a full kernel buffer. Readiness is
// handled inline by the loop goroutine, which never blocks on a socket:
// reads and writes are non-blocking system calls.
//
// addLocked, watchWriteLocked and removeLocked are called with the socket's Conn.mu held:
// every epoll_ctl for a socket happens under its lock, so the interest
// registered in epoll always matches Conn.waitOut.
type poller struct {
	epfd int
	wake int // eventfd that interrupts epoll_wait on close

	mu    sync.Mutex
	conns map[int32]*Conn // registered sockets by fd; guarded by mu

	done chan struct{} // closed when the loop returns
}

const (
	pollIn  = unix.EPOLLIN | unix.EPOLLRDHUP
	pollOut = unix.EPOLLOUT
	pollEnd = unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLRDHUP
)

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	return &poller{epfd: epfd, wake: wake, conns: make(map[int32]*Conn), done: make(chan struct{})}, nil
}

// ctl runs epoll_ctl on c's descriptor.
func (p *poller) ctl(c *Conn, op int, events uint32) error {
	return c.sock.ctl(p.epfd, op, events)
}

// addLocked starts watching c for input. It refuses a descriptor number that is
// still registered to another socket, and on failure it removes only its
// own map entry. c.mu is held.
func (p *poller) addLocked(c *Conn) error {
	p.mu.Lock()
	if other := p.conns[c.sock.fd]; other != nil {
		p.mu.Unlock()
		return fmt.Errorf("epoll add: descriptor %d is still registered", c.sock.fd)
	}
	p.conns[c.sock.fd] = c
	p.mu.Unlock()
	if err := p.ctl(c, unix.EPOLL_CTL_ADD, pollIn); err != nil {
		p.forget(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// forget drops c from the fd map if the entry is still c's.
func (p *poller) forget(c *Conn) {
	p.mu.Lock()
	if p.conns[c.sock.fd] == c {
		delete(p.conns, c.sock.fd)
	}
	p.mu.Unlock()
}

// watchWriteLocked turns output readiness reports for c on or off; input is
// watched until c.inputDone. c.mu is held.
func (p *poller) watchWriteLocked(c *Conn, on bool) error {
	var ev uint32 = pollIn
	if c.inputDone {
		ev = 0 // EPOLLHUP and EPOLLERR are still reported
	}
	if on {
		ev |= pollOut
	}
	return p.ctl(c, unix.EPOLL_CTL_MOD, ev)
}

// removeLocked stops watching c. It is called, with c.mu held, before c's
// socket is closed.
func (p *poller) removeLocked(c *Conn) {
	_ = p.ctl(c, unix.EPOLL_CTL_DEL, 0)
	p.forget(c)
}

// appendConns appends the sockets registered now to dst.
func (p *poller) appendConns(dst []*Conn) []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		dst = append(dst, c)
	}
	return dst
}

// run waits for readiness and hands it to c.onReadable and c.onWritable
// until close is called. buf is the loop's read buffer, shared by every
// socket of this poller.
func (p *poller) run(bufSize int) {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, bufSize)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := range events[:n] {
			ev := &events[i]
			if ev.Fd == int32(p.wake) {
				return
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&pollOut != 0 {
				c.onWritable()
			}
			if ev.Events&(unix.EPOLLIN|pollEnd) != 0 {
				c.onReadable(buf)
			}
		}
	}
}

// close stops the loop and releases the epoll instance. Sockets still
// registered are left to their owners.
func (p *poller) close() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wake)
}

// dupNonBlocking duplicates fd (close-on-exec) and sets the copy
// non-blocking.
func dupNonBlocking(fd int) (int, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("dup: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return -1, fmt.Errorf("set non-blocking: %w", err)
	}
	return dup, nil
}
