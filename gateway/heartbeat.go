package gateway

import (
	"time"
)

// heartbeat pings every socket once per PingInterval, reaps sockets that were
// silent for IdleTimeout, whose output is stuck past WriteTimeout, or whose
// close handshake passed its deadline, and forgets idle rate-limit buckets.
// It scans the registry a shard at a time, so it never holds a lock while it
// writes.
func (s *Server) heartbeat() {
	tick := min(max(s.cfg.PingInterval/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var buf []*Conn
	lastSweep := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			n := now.UnixNano()
			buf = s.reg.each(buf, func(c *Conn) { c.tick(n, &s.cfg) })
			if now.Sub(lastSweep) > time.Minute {
				lastSweep = now
				s.tokens.sweep(now)
			}
		}
	}
}
