package gateway

import (
	"runtime/debug"
	"time"

	"go.uber.org/zap"
)

// Returning memory after a burst of handshakes.
//
// Each handshake leaves garbage behind (net/http's per-request buffers,
// token checks, Redis replies): during a burst of thousands of handshakes
// the Go heap grows to twice what is live (GOGC=100), and after the burst
// the Go runtime returns the difference to the operating system only
// slowly, so a replica's RSS stays at its burst peak: 5-6 KiB per idle
// socket at 15,000 sockets against about 2 KiB live (docs/BENCHMARKS.md).
// Once a burst is over, the release loop runs debug.FreeOSMemory: one
// garbage collection and the return of every free page, once per burst.

const (
	releaseTick  = time.Second
	releaseBurst = 1000 // handshakes since the last release that make a burst
	releaseQuiet = 50   // handshakes in the last tick under which it is over
)

// burstWatch decides when a burst of handshakes is over. Not safe for
// concurrent use: the release loop owns it.
type burstWatch struct {
	burst, quiet uint64
	last         uint64 // handshakes counted at the previous tick
	since        uint64 // handshakes since the last release
}

// tick takes the handshake count now and reports whether to release.
func (b *burstWatch) tick(count uint64) bool {
	n := count - b.last
	b.last = count
	b.since += n
	if b.since < b.burst || n >= b.quiet {
		return false
	}
	b.since = 0
	return true
}

// releaseLoop returns free memory to the operating system after each burst
// of handshakes, until the core stops.
func (s *Server) releaseLoop(free func()) {
	t := time.NewTicker(releaseTick)
	defer t.Stop()
	w := burstWatch{burst: releaseBurst, quiet: releaseQuiet}
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if w.tick(s.handshakes.Load()) {
			start := time.Now()
			free()
			s.log.Debug("returned free memory after a burst of handshakes", zap.Duration("took", time.Since(start)))
		}
	}
}

// freeOSMemory is the release loop's action.
var freeOSMemory = debug.FreeOSMemory
