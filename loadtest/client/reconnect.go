package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// attempt makes one connect attempt for s and, when it fails, schedules the
// next as the failure's policy says.
func (f *Fleet) attempt(s *Socket) {
	defer f.pending.Done()
	open := f.pl.ArrivalRate > 0 // an open loop: nothing bounds the handshakes in flight
	if !open {
		select {
		case f.sem <- struct{}{}:
		case <-f.ctx.Done():
			return
		}
	}
	mint := newSessionMinter(f.pl.SessionSecret, f.pl.UserClaim, time.Now)
	start := time.Now()
	ctx, cancel := context.WithTimeout(f.ctx, f.dial.handshakeWait())
	conn, rest, inboxID, err := f.dial.connect(ctx, s, mint)
	cancel()
	if !open {
		<-f.sem
	}
	if err == nil {
		// The counters are reset before register: once registered, the
		// socket may be closed and its next attempt started by another
		// goroutine at any time.
		attempts, invalid := s.attempts, s.invalid
		s.attempts, s.invalid = 0, 0
		if err = s.p.register(s, conn, rest, inboxID, time.Since(start)); err != nil {
			s.attempts, s.invalid = attempts, invalid // not registered: still ours
			if !errors.Is(err, errStopping) {
				f.countFailure("client_fd_error")
				f.schedule(s, retryBackoff, 0, false)
			}
			return
		}
		return
	}
	if f.ctx.Err() != nil {
		return
	}
	var ae *attemptError
	if !errors.As(err, &ae) {
		ae = &attemptError{reason: "error", next: retryBackoff, err: err}
	}
	f.countFailure(ae.reason)
	f.schedule(s, ae.next, ae.wait, ae.reason == "close_4002")
}

// afterClose applies the reconnect policy after a session ended. The
// caller has added one to f.pending for it.
func (f *Fleet) afterClose(s *Socket, code int, byServer bool, hint time.Duration) {
	step := retryBackoff
	if byServer {
		step = closeStep(code)
	}
	wait := time.Duration(0)
	if step == retryAfter {
		if hint >= 0 {
			wait = hint
		} else {
			step = retryBackoff
		}
	}
	defer f.pending.Done()
	f.schedule(s, step, wait, code == 4002)
}

// reconnect opens s again at once (after a client-side close). The caller
// has added one to f.pending for it.
func (f *Fleet) reconnect(s *Socket) {
	f.reconns.Add(1)
	f.attempt(s)
}

// schedule starts s's next attempt per step.
func (f *Fleet) schedule(s *Socket, step nextStep, wait time.Duration, invalid bool) {
	if invalid {
		s.invalid++
	} else {
		s.invalid = 0
	}
	switch step {
	case stop:
		f.setGone(s)
		return
	case retryOnce:
		if s.invalid > 1 {
			f.setGone(s)
			return
		}
		wait = 0
	case retryNow:
		wait = 0
	case retryBackoff:
		s.attempts++
		wait = backoff(s.attempts)
	case retryAfter:
		wait = jitter(wait)
	}
	f.pending.Add(1)
	if wait <= 0 {
		go f.attempt(s)
		return
	}
	t := time.NewTimer(wait)
	go func() {
		select {
		case <-t.C:
			f.attempt(s)
		case <-f.ctx.Done():
			t.Stop()
			f.pending.Done()
		}
	}()
}

func (f *Fleet) setGone(s *Socket) {
	s.p.mu.Lock()
	if s.state != sockGone {
		s.state = sockGone
		f.gone.Add(1)
	}
	s.p.mu.Unlock()
}

// backoff is the jittered exponential reconnect delay: 250 ms doubling to
// 10 s, each drawn uniformly in [d/2, d).
func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < attempt && d < 10*time.Second; i++ {
		d *= 2
	}
	return jitter(min(d, 10*time.Second))
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
