package wscore

import (
	"time"
)

// heartbeat pings every started socket once per PingInterval and reaps
// sockets that were silent for IdleTimeout, whose output is stuck past
// WriteTimeout, or whose close handshake passed its deadline. It scans the
// pollers' socket maps one at a time, copying the sockets out, so that it
// never holds a poller's lock while it works on a socket. Sockets still in
// their handshake are not in those maps: the handshake's goroutine owns
// them, and bounds them with its own timeout.
func (k *Core) heartbeat() {
	tick := min(max(k.cfg.PingInterval/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var buf []*Conn
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
			now := Now()
			for _, p := range k.pollers {
				buf = p.appendConns(buf[:0])
				for _, c := range buf {
					c.tick(now, &k.cfg)
				}
				clear(buf)
			}
		}
	}
}

// tick runs the heartbeat for one socket: ping when due, reap a socket that
// went silent, whose output is stuck, or whose close handshake timed out.
func (c *Conn) tick(now int64, cfg *Config) {
	c.mu.Lock()
	state, stalled, deadline := c.state, c.stalled, c.deadline
	c.mu.Unlock()
	switch {
	case state == Closing && now > deadline:
		c.teardown(EndCloseTimeout)
	case state != Active:
	case stalled != 0 && now-stalled > int64(cfg.WriteTimeout):
		c.core.writeTimeouts.Add(1)
		c.teardown(EndWriteTimeout)
	case now-c.lastSeen.Load() > int64(cfg.IdleTimeout):
		c.Shed(DisconnectIdle, time.Second)
	case now >= c.nextPing:
		c.nextPing = now + int64(cfg.PingInterval)
		_ = c.Send(framePing)
	}
}
