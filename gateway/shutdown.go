package gateway

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// Shutdown drains the replica. /readyz and new /ws requests answer 503 (a
// load balancer can retry another replica); every socket is sent
// {"type":"reconnect","after_ms":N}, N jittered below DrainWindow, then
// closed with 1012, at most DrainConcurrency at a time. Once the sockets are
// gone the listener closes. Shutdown returns when every socket is closed, or
// at ctx's deadline, when the sockets left are dropped. The broker and
// replay store are the caller's to close afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	start := time.Now()
	s.log.Info("draining: refusing new sockets", zap.Int("sockets", s.Sockets()))
	s.drain(ctx)
	s.waitSockets(ctx)
	// Close the listener and let handshakes already under way finish, then
	// drain the sockets they opened.
	s.stopAccept()
	httpErr := s.http.Shutdown(ctx)
	s.drain(ctx)
	s.waitSockets(ctx)
	left := s.live.Load()
	if left > 0 {
		s.log.Warn("shutdown deadline: dropping the sockets left", zap.Int64("sockets", left))
		s.dropAll()
	}
	s.closeCore()
	s.log.Info("drained", zap.Duration("took", time.Since(start)), zap.Int64("dropped", left))
	return httpErr
}

// drain tells every socket to reconnect and closes it with 1012, keeping at
// most DrainConcurrency sockets in their close handshake at once.
func (s *Server) drain(ctx context.Context) {
	slots := make(chan struct{}, s.cfg.DrainConcurrency)
	window := int64(s.cfg.DrainWindow / time.Millisecond)
	var conns []*Conn
	s.reg.each(nil, func(c *Conn) { conns = append(conns, c) })
	for _, c := range conns {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		after := rand.Int64N(max(window, 1))
		frame := textFrame([]byte(`{"type":"reconnect","after_ms":` + strconv.FormatInt(after, 10) + `}`))
		if !c.drain(frame, slots) {
			<-slots
		}
	}
}

// drain queues the reconnect frame and a 1012 close; slot is released when
// the socket is torn down. It reports false for a socket already closing.
func (c *Conn) drain(reconnect []byte, slots chan struct{}) bool {
	if !c.enqueue(reconnect) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateOpen {
		return false
	}
	c.slots = slots
	c.closeLocked(DisconnectServiceRestart, false, time.Now().Add(c.srv.cfg.CloseTimeout).UnixNano())
	return true
}

// waitSockets waits until every socket is gone or ctx is done.
func (s *Server) waitSockets(ctx context.Context) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.live.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dropAll tears down every socket the pollers still watch.
func (s *Server) dropAll() {
	for _, p := range s.pollers {
		for _, c := range p.snapshot() {
			c.teardown(endShutdownForce)
		}
	}
	s.reg.each(nil, func(c *Conn) { c.teardown(endShutdownForce) })
}
