package gateway

import (
	"errors"
	"net"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// backoffListener survives running out of file descriptors. When accept fails
// with EMFILE, ENFILE, ENOBUFS or ENOMEM, the pending connection stays in the
// kernel's backlog and the next accept would fail at once: instead of
// spinning, the listener sleeps (5 ms doubling to 1 s), logs at most once a
// second, and tries again.
type backoffListener struct {
	net.Listener
	log     *zap.Logger
	metrics *metrics
	stop    <-chan struct{} // closed when the server shuts down
}

func (l *backoffListener) Accept() (net.Conn, error) {
	var wait time.Duration
	var lastLog time.Time
	for {
		c, err := l.Listener.Accept()
		if err == nil || !isFDExhausted(err) {
			if err == nil && wait > 0 {
				l.log.Info("accepting again after descriptor exhaustion", zap.Duration("backed_off", wait))
			}
			return c, err
		}
		l.metrics.acceptBackoffs.Inc()
		if wait == 0 {
			wait = 5 * time.Millisecond
		} else {
			wait = min(2*wait, time.Second)
		}
		if now := time.Now(); now.Sub(lastLog) >= time.Second {
			lastLog = now
			l.log.Warn("accept failed: out of file descriptors or memory; backing off", zap.Error(err), zap.Duration("retry_in", wait))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.stop:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

// isFDExhausted reports an accept error caused by running out of file
// descriptors or kernel memory, which passes once sockets close.
func isFDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
