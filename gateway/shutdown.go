package gateway

import (
	"context"
	"math/rand/v2"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/gateway/wscore"
)

// Shutdown drains the replica. /readyz and new /ws requests answer 503 (a
// load balancer can retry another replica); every socket is sent
// {"type":"reconnect","after_ms":N}, N jittered below DrainWindow, then
// closed with 1012, at most DrainConcurrency at a time. A socket still in
// its handshake is refused with 1012 before its welcome. Once the sockets
// are gone the listener closes. Shutdown returns when every socket is
// closed, or at ctx's deadline, when the sockets left are dropped. The
// broker and replay store are the caller's to close afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	start := time.Now()
	close(s.drainCh)    // handshakes waiting for their subscription give up
	s.admission.drain() // and those waiting for admission without a goroutine
	s.log.Info("draining: refusing new sockets", zap.Int("sockets", s.Sockets()))
	s.drain(ctx)
	// Every /ws request counted in live either saw draining and answers
	// 503, or ends in a socket that the drain above closed or that refuses
	// itself once registered: live reaches 0 with no socket left behind.
	s.waitSockets(ctx)
	s.stopAccept()
	httpErr := s.http.Shutdown(ctx)
	s.reading.wait() // a first read that ended in an upgrade is counted in live by now
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

// drain tells every registered socket to reconnect and closes it with 1012,
// keeping at most DrainConcurrency sockets in their close handshake at once.
func (s *Server) drain(ctx context.Context) {
	window := int64(s.cfg.DrainWindow / time.Millisecond)
	var conns []*Conn
	s.reg.each(nil, func(c *Conn) { conns = append(conns, c) })
	for _, c := range conns {
		select {
		case s.drainSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		after := rand.Int64N(max(window, 1))
		frame := wscore.TextFrame([]byte(`{"type":"reconnect","after_ms":` + strconv.FormatInt(after, 10) + `}`))
		if _, ok := c.to(evDrain); !ok { // ended meanwhile
			<-s.drainSlots
			continue
		}
		// The slot is released by connEnded, or here when the socket was
		// closing already.
		if !c.ws.CloseAfter(frame, DisconnectServiceRestart) {
			if _, ok := c.to(evUndrain); ok {
				<-s.drainSlots
			}
		}
	}
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

// dropAll closes every socket left, without a close handshake.
func (s *Server) dropAll() {
	for _, c := range s.core.AppendConns(nil) {
		c.Drop(wscore.EndShutdownForce)
	}
	s.reg.each(nil, func(c *Conn) { c.ws.Drop(wscore.EndShutdownForce) })
}
