package scenario

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

func readers(u *client.User) bool { return !u.Flooding() }

// fanout publishes for c.Duration, waits for the deliveries, and settles.
func (w *worker) fanout(c client.Command) *client.Result {
	w.f.ResetTallies()
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.f.Context(), c.Duration)
	pb := &publisher{f: w.f, size: w.f.Plan().PayloadBytes}
	pb.run(ctx, c.Rate, readers)
	cancel()
	// Sockets a restarted or draining replica closed are still on their
	// way back: sockets_up_at_end counts them once they are.
	w.f.SetWaiting("sockets to reconnect")
	w.f.WaitUp(w.f.Plan().DrainTimeout)
	w.f.SetWaiting("messages still in flight")
	w.f.Drain()
	w.f.SetWaiting("")
	r := w.f.Collect("fanout", start)
	r.Published, r.PublishErrors = pb.sent, pb.errs
	return r
}

// churn runs fan-out while, every second, c.Share of the sockets that are
// up close and reconnect with a fresh token.
func (w *worker) churn(c client.Command) *client.Result {
	w.f.ResetTallies()
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.f.Context(), c.Duration)
	pb := &publisher{f: w.f, size: w.f.Plan().PayloadBytes}
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
			w.f.Each(func(s *client.Socket) {
				if s.UpLocked() && rand.Float64() < c.Share {
					s.CloseLocked("churn", true)
				}
			})
		}
	}
	tick.Stop()
	wg.Wait()
	cancel()
	w.f.WaitUp(w.f.Plan().DrainTimeout)
	w.f.Drain()
	r := w.f.Collect("churn", start)
	r.Published, r.PublishErrors = pb.sent, pb.errs
	return r
}

// slow runs fan-out for half of c.Duration with every socket reading (the
// baseline), then stops reading on the slow candidates (c.Share of the
// sockets, chosen when they were dialled with a small receive buffer) for
// the other half while the rest keep reading, and floods their users with
// c.Flood bytes per second each so that their queues pass herald's cap.
func (w *worker) slow(c client.Command) *client.Result {
	w.f.ResetTallies()
	start := time.Now()
	half := c.Duration / 2
	ctx, cancel := context.WithTimeout(w.f.Context(), half)
	pb := &publisher{f: w.f, size: w.f.Plan().PayloadBytes}
	pb.run(ctx, c.Rate, readers)
	cancel()
	w.f.Drain()
	base := w.f.Collect("slow", start)
	w.f.ResetTallies()

	var slow uint64
	w.f.Each(func(s *client.Socket) {
		if s.SlowCandidate() && s.UpLocked() {
			s.MarkSlowLocked()
			slow++
		}
	})
	ctx, cancel = context.WithTimeout(w.f.Context(), c.Duration-half)
	var wg sync.WaitGroup
	flood := &publisher{f: w.f, size: floodBytes}
	if c.Flood > 0 && slow > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			flood.run(ctx, c.Flood*float64(slow)/float64(flood.size), (*client.User).Flooding)
		}()
	}
	pb2 := &publisher{f: w.f, size: w.f.Plan().PayloadBytes, next: pb.next}
	pb2.run(ctx, c.Rate, readers)
	wg.Wait()
	cancel()
	// The slow tabs wake up and read what they left: a shed socket's close
	// frame (4009) sits behind the data herald managed to hand the kernel
	// before it gave up, so only reading finds it. Those still open then
	// close and reconnect.
	w.f.Each((*client.Socket).WakeLocked)
	defer w.f.SetWaiting("")
	deadline := time.Now().Add(2 * w.f.Plan().DrainTimeout)
	for time.Now().Before(deadline) && w.f.Context().Err() == nil {
		n := 0
		w.f.Each(func(s *client.Socket) {
			if s.SlowLocked() {
				n++
			}
		})
		if n == 0 {
			break
		}
		w.f.SetWaiting(fmt.Sprintf("herald to shed the slow sockets (4009): %d of %d still open", n, slow))
		time.Sleep(50 * time.Millisecond)
	}
	w.f.SetWaiting("the shed sockets to reconnect")
	var still uint64
	w.f.Each(func(s *client.Socket) {
		if s.SlowLocked() {
			still++
			s.CloseLocked("slow_end", true)
		}
	})
	w.f.WaitUp(w.f.Plan().DrainTimeout)
	w.f.SetWaiting("messages still in flight")
	w.f.Drain()
	r := w.f.Collect("slow", start)
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
func (w *worker) broadcastWait(c client.Command) *client.Result {
	start := time.Now()
	deadline := start.Add(c.Timeout)
	want := uint64(w.f.Up())
	for time.Now().Before(deadline) && w.f.Context().Err() == nil {
		if w.f.BroadcastGot() >= want {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	missing := uint64(0)
	w.f.Each(func(s *client.Socket) {
		if s.UpLocked() && s.BroadcastLocked() < c.ID {
			missing++
		}
	})
	r := w.f.Collect("broadcast", start)
	r.BroadcastMissed = missing
	return r
}

// floodBytes is the size of the messages that push slow sockets over
// herald's queue cap: large, so that the flood costs few PUBLISHes.
const floodBytes = 32 << 10
