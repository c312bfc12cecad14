package redis

import (
	"errors"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// health checks pc every HealthInterval until done is closed. Any frame
// read from pc is proof of life (receive counts them in frames): on a
// subscribed connection the PONG queues behind every message already on
// its way, so a link that delivers is alive however late its PONG. The
// PING matters only when the link is silent: pc is closed when a PING is
// still unanswered and no frame at all was read for a whole interval, or
// when a PING cannot be sent. A blackholed Redis is so detected within two
// intervals.
func (r *session) health(pc *pubsubConn, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.HealthInterval)
	defer t.Stop()
	var sent, seen uint64 // PINGs sent; frames read at the previous tick
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		frames := r.frames.Load()
		busy := frames != seen
		seen = frames
		r.ticked.Store(frames)
		if sent > 0 && r.pongs.Load() < sent {
			if busy {
				continue // alive: the PONG is behind the messages being read
			}
			r.log.Warn("redis pub/sub health check: PING unanswered and nothing read", zap.Duration("for", r.cfg.HealthInterval))
			pc.close()
			return
		}
		sent++
		if err := pc.command(r.cfg.HealthInterval, "PING", strconv.FormatUint(sent, 10)); err != nil {
			// net.ErrClosed: the receive loop or Close closed the
			// connection, and knows.
			if !errors.Is(err, net.ErrClosed) {
				r.log.Warn("redis pub/sub health check: PING failed", zap.Error(err))
				pc.close()
			}
			return
		}
	}
}

// outputBufferHint explains a connection Redis closed while it was
// delivering: the usual cause is its output-buffer limit for subscribers.
const outputBufferHint = "Redis may have dropped this subscriber at its output-buffer limit (client-output-buffer-limit pubsub, default 32mb hard, 8mb for 60s): " +
	"the connection closed while messages were arriving faster than this replica read them; " +
	"messages in between are lost (sockets get resync). Raise the limit, publish less, or give the replica more CPU"

// closedByServer reports whether err is the peer closing the connection
// (EOF, or a reset), as Redis does to a client it kills.
func closedByServer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}
