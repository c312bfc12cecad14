package testenv

import (
	"sync/atomic"
	"testing"
	"time"
)

// StallMeter measures how long the machine kept the test process from
// running: a goroutine that asks to wake every millisecond records the
// longest it waited beyond that. A test whose bound is a few of the code's
// own intervals (a health check's, a heartbeat's) compares the longest
// stall with the interval to tell a machine that stopped the process, which
// no code can outrun, from a defect, which fails the test whatever the
// machine did.
type StallMeter struct {
	longest atomic.Int64 // nanoseconds
	stop    chan struct{}
	done    chan struct{}
}

// StartStallMeter starts a meter that stops when the test ends.
func StartStallMeter(t testing.TB) *StallMeter {
	m := &StallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	t.Cleanup(m.Stop)
	return m
}

func (m *StallMeter) run() {
	defer close(m.done)
	const tick = time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			woke := time.Now()
			if late := woke.Sub(last) - tick; late > time.Duration(m.longest.Load()) {
				m.longest.Store(int64(late))
			}
			last = woke
		}
	}
}

// Longest returns the longest stall seen so far.
func (m *StallMeter) Longest() time.Duration { return time.Duration(m.longest.Load()) }

// Stop stops the meter; Longest keeps its figure. It may be called twice.
func (m *StallMeter) Stop() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}
