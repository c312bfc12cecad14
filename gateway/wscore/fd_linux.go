//go:build linux

package wscore

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockFD is a socket descriptor the core owns after the upgrade: reads,
// writes and epoll_ctl are plain system calls on it, with no net.Conn, no
// runtime poll descriptor and no FD lock around them. Its only guard is a
// count of the calls under way: close marks it closing, and the descriptor
// is closed by whichever of close and the last call under way comes last,
// so that no call ever runs on a descriptor number the kernel has reused.
type sockFD struct {
	fd   int32
	refs atomic.Int32 // calls under way, plus fdClosing and fdClosed
}

const (
	fdClosing = 1 << 29 // close was called: no new call starts
	fdClosed  = 1 << 30 // the descriptor is closed (set once, with the close)
)

// acquire starts a call on the descriptor; false means it is closing.
func (s *sockFD) acquire() bool {
	if s.refs.Add(1)&fdClosing != 0 {
		s.release()
		return false
	}
	return true
}

// release ends a call started by acquire.
func (s *sockFD) release() {
	if s.refs.Add(-1) == fdClosing {
		s.closeIdle()
	}
}

// close marks the descriptor closing; it is closed now, or when the last
// call under way ends.
func (s *sockFD) close() {
	s.refs.Or(fdClosing)
	s.closeIdle()
}

// closeIdle closes the descriptor if it is closing and no call is under way.
func (s *sockFD) closeIdle() {
	if s.refs.CompareAndSwap(fdClosing, fdClosing|fdClosed) {
		_ = unix.Close(int(s.fd))
	}
}

// read reads what is available without blocking. It returns n == 0 and
// err == nil at end of stream, and errWouldBlock when nothing is available
// or ErrClosed when the descriptor is closing.
func (s *sockFD) read(buf []byte) (int, error) {
	if !s.acquire() {
		return 0, ErrClosed
	}
	n, err := unix.Read(int(s.fd), buf)
	s.release()
	return result(n, err)
}

// write writes as much of b as the kernel takes without blocking.
func (s *sockFD) write(b []byte) (int, error) {
	if !s.acquire() {
		return 0, ErrClosed
	}
	n, err := unix.Write(int(s.fd), b)
	s.release()
	return result(n, err)
}

// writev writes as much of bufs as the kernel takes without blocking, with
// iov as the iovec array (len(iov) >= len(bufs)): one system call, and no
// allocation.
func (s *sockFD) writev(bufs [][]byte, iov []iovec) (int, error) {
	if len(bufs) == 1 {
		return s.write(bufs[0])
	}
	iov = iov[:len(bufs)]
	for i, b := range bufs {
		iov[i].Base = unsafe.SliceData(b)
		iov[i].SetLen(len(b))
	}
	if !s.acquire() {
		return 0, ErrClosed
	}
	n, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(s.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	s.release()
	clear(iov)
	if errno != 0 {
		return result(0, errno)
	}
	return int(n), nil
}

// ctl runs epoll_ctl for the descriptor on epfd.
func (s *sockFD) ctl(epfd, op int, events uint32) error {
	if !s.acquire() {
		return ErrClosed
	}
	ev := unix.EpollEvent{Events: events, Fd: s.fd}
	err := unix.EpollCtl(epfd, op, int(s.fd), &ev)
	s.release()
	return err
}

func result(n int, err error) (int, error) {
	if err == unix.EAGAIN {
		return 0, errWouldBlock
	}
	return max(n, 0), err
}

type iovec = unix.Iovec
