//go:build !linux

package wscore

import (
	"errors"
	"syscall"
)

// herald's socket core is built on Linux epoll. Other systems build, so that
// the packages around it can be developed there, but New refuses to start.

type poller struct{}

func newPoller() (*poller, error) {
	return nil, errors.New("wscore: the socket core needs Linux (epoll)")
}

func (p *poller) addLocked(*Conn) error              { return nil }
func (p *poller) watchWriteLocked(*Conn, bool) error { return nil }
func (p *poller) removeLocked(*Conn)                 {}
func (p *poller) run(int)                            {}
func (p *poller) close()                             {}
func (p *poller) appendConns(dst []*Conn) []*Conn    { return dst }

type iovec struct{}

type sockFD struct{ fd int32 }

func (s *sockFD) read([]byte) (int, error)              { return 0, errWouldBlock }
func (s *sockFD) write([]byte) (int, error)             { return 0, errWouldBlock }
func (s *sockFD) writev([][]byte, []iovec) (int, error) { return 0, errWouldBlock }
func (s *sockFD) close()                                {}

func dupNonBlocking(fd int) (int, error) { return syscall.Dup(fd) }
