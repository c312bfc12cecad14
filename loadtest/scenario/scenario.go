package loadtest

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// publisher PUBLISHes numbered fan-out messages to this worker's users. A
// user's messages come from one goroutine at a time, so each socket must see
// them in order.
type publisher struct {
	w     *worker
	size  int
	next  int // round-robin position in w.users
	buf   []byte
	sent  uint64
	errs  uint64
	pipe  [][]byte
	chans []string
}

// run publishes at rate messages per second (0: as fast as Redis answers)
// until ctx ends, to the users pick accepts.
func (pb *publisher) run(ctx context.Context, rate float64, pick func(*user) bool) {
	if pb.w.rdb == nil || len(pb.w.users) == 0 {
		return
	}
	start := time.Now()
	for ctx.Err() == nil {
		n := 128
		if rate > 0 {
			due := uint64(rate * time.Since(start).Seconds())
			if due <= pb.sent {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			n = int(min(due-pb.sent, 1000))
		}
		pipe := pb.w.rdb.Pipeline()
		k := 0
		for tries := 0; k < n && tries < n+len(pb.w.users); tries++ {
			u := pb.w.users[pb.next]
			pb.next = (pb.next + 1) % len(pb.w.users)
			if !pick(u) {
				continue
			}
			seq := u.assigned.Add(1)
			pb.buf = appendFanout(pb.buf[:0], seq, time.Now().UnixNano(), pb.size)
			pipe.Publish(ctx, u.channel, string(pb.buf))
			k++
		}
		if k == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if _, err := pipe.Exec(context.WithoutCancel(ctx)); err != nil {
			pb.errs += uint64(k)
		}
		pb.sent += uint64(k)
	}
}

func readers(u *user) bool { return !u.flooding.Load() }

// fanout publishes for c.Duration, waits for the deliveries, and settles.
func (w *worker) fanout(c command) *phaseResult {
	w.resetTallies()
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, c.Duration)
	pb := &publisher{w: w, size: w.pl.PayloadBytes}
	pb.run(ctx, c.Rate, readers)
	cancel()
	w.drain()
	r := w.collect("fanout", start)
	r.Published, r.PublishErrors = pb.sent, pb.errs
	return r
}

// churn runs fan-out while, every second, c.Share of the sockets that are
// up close and reconnect with a fresh token.
func (w *worker) churn(c command) *phaseResult {
	w.resetTallies()
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, c.Duration)
	pb := &publisher{w: w, size: w.pl.PayloadBytes}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pb.run(ctx, c.Rate, readers)
	}()
	tick := time.NewTicker(time.Second)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			w.each(func(p *poller, s *socket) {
				if s.state == sockUp && rand.Float64() < c.Share {
					p.clientCloseLocked(s, "churn", true)
				}
			})
		}
	}
	tick.Stop()
	wg.Wait()
	cancel()
	w.waitUp(w.pl.DrainTimeout)
	w.drain()
	r := w.collect("churn", start)
	r.Published, r.PublishErrors = pb.sent, pb.errs
	return r
}

// waitUp waits until no socket is reconnecting, or timeout.
func (w *worker) waitUp(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !w.settled() && time.Now().Before(deadline) && w.ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// slow runs fan-out for half of c.Duration with every socket reading (the
// baseline), then stops reading on the slow candidates (c.Share of the
// sockets, chosen when they were dialled with a small receive buffer) for
// the other half while the rest keep reading, and floods their users with
// c.Flood bytes per second each so that their queues pass herald's cap.
func (w *worker) slow(c command) *phaseResult {
	w.resetTallies()
	start := time.Now()
	half := c.Duration / 2
	ctx, cancel := context.WithTimeout(w.ctx, half)
	pb := &publisher{w: w, size: w.pl.PayloadBytes}
	pb.run(ctx, c.Rate, readers)
	cancel()
	w.drain()
	base := w.collect("slow", start)
	w.resetTallies()

	var slow uint64
	w.each(func(p *poller, s *socket) {
		if s.slowCandidate && s.state == sockUp {
			p.markSlowLocked(s)
			slow++
		}
	})
	ctx, cancel = context.WithTimeout(w.ctx, c.Duration-half)
	var wg sync.WaitGroup
	flood := &publisher{w: w, size: floodBytes}
	if c.Flood > 0 && slow > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flood.run(ctx, c.Flood*float64(slow)/float64(flood.size), func(u *user) bool { return u.flooding.Load() })
		}()
	}
	pb2 := &publisher{w: w, size: w.pl.PayloadBytes, next: pb.next}
	pb2.run(ctx, c.Rate, readers)
	wg.Wait()
	cancel()
	// The slow tabs wake up and read what they left: a shed socket's close
	// frame (4009) sits behind the data herald managed to hand the kernel
	// before it gave up, so only reading finds it. Those still open then
	// close and reconnect.
	w.each(func(p *poller, s *socket) {
		if s.state == sockSlow {
			// Megabytes may wait behind the close: open the window.
			_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			p.ctlLocked(s, unix.EPOLL_CTL_MOD, evRead)
		}
	})
	deadline := time.Now().Add(2 * w.pl.DrainTimeout)
	for time.Now().Before(deadline) && w.ctx.Err() == nil {
		n := 0
		w.each(func(_ *poller, s *socket) {
			if s.state == sockSlow {
				n++
			}
		})
		if n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var still uint64
	w.each(func(p *poller, s *socket) {
		if s.state == sockSlow {
			still++
			p.clientCloseLocked(s, "slow_end", true)
		}
	})
	w.waitUp(w.pl.DrainTimeout)
	w.drain()
	r := w.collect("slow", start)
	r.Baseline = base.Latency
	r.Published = base.Published + pb.sent + pb2.sent
	r.PublishErrors = pb.errs + pb2.errs + flood.errs
	r.Sent += base.Sent
	r.Delivered += base.Delivered
	r.Lost += base.Lost
	r.Excused += base.Excused
	r.Resyncs += base.Resyncs
	r.Dups += base.Dups
	r.OutOfOrder += base.OutOfOrder
	r.SocketsLost += base.SocketsLost
	r.Slow, r.StillSlow, r.Flooded = slow, still, flood.sent
	return r
}

// broadcastWait waits until every socket that is up has the armed
// broadcast, or c.Timeout passes.
func (w *worker) broadcastWait(c command) *phaseResult {
	start := time.Now()
	deadline := start.Add(c.Timeout)
	want := uint64(w.up.Load())
	for time.Now().Before(deadline) && w.ctx.Err() == nil {
		var got uint64
		for _, p := range w.pollers {
			p.mu.Lock()
			got += p.t.bcGot
			p.mu.Unlock()
		}
		if got >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	missing := uint64(0)
	w.each(func(_ *poller, s *socket) {
		if s.state == sockUp && s.bcID < c.ID {
			missing++
		}
	})
	r := w.collect("broadcast", start)
	r.BroadcastMissed = missing
	return r
}

// floodBytes is the size of the messages that push slow sockets over
// herald's queue cap: large, so that the flood costs few PUBLISHes.
const floodBytes = 32 << 10
