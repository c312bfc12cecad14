package scenario

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/loadtest/client"
)

// The storm scenario (named replay on the command line and in the report):
// a reconnect storm against herald's per-user inbox.
//
// The users split in two: the live users, which fan-out reaches all along
// (plain PUBLISHes, as in fanout), and the storm group, the last
// ReplayUsers users. With two worker processes or more, the live users
// and the storm group are held by different processes, so that the storm's
// handshakes do not share a Go scheduler with the sockets whose latency
// measures it. The parent runs five steps on every worker:
//
//	storm_away   live fan-out starts; the away part of the storm group closes
//	          all its sockets; K events are appended to the inbox of each
//	          storm-group user (publish.Publisher.AppendToUser): the away
//	          ones miss them, the others get them live
//	storm_base   live fan-out alone for a while: the latency before the storm
//	storm_storm  every away socket reconnects at once (fresh token, since = the
//	          inbox_id of the last frame it saw) while live fan-out goes on;
//	          it ends when each has its replay_complete or resync
//	storm_cut    once every worker's storm is over: the storm's live latency
//	          and handshake windows close
//	storm_end    live fan-out stops; every socket's accounting is settled
//
// Each window's live latency is that of the deliveries during it, and of
// the messages published in it that arrive just after (awaitPublished).
//
// A storm-group socket must get exactly its K events, each once, in order
// (k = 1…K), then replay_complete with count K (away sockets), or K live
// events (the others). Events are told apart by the storm's id, so that
// nothing of an earlier run counts.

// liveFanout is the storm's fan-out to the live users, running across the
// scenario's steps. Owned by the command loop.
type liveFanout struct {
	pb     *publisher
	cancel context.CancelFunc
	done   chan struct{}
}

func liveReaders(u *client.User) bool { return !u.Storm() && !u.Flooding() }

func (w *worker) startLive(rate float64) {
	if !slices.ContainsFunc(w.f.Users(), func(u *client.User) bool { return !u.Storm() }) {
		return // a storm-only worker: its rate is 0, which would mean flat out
	}
	ctx, cancel := context.WithCancel(w.f.Context())
	lf := &liveFanout{pb: &publisher{f: w.f, size: w.f.Plan().PayloadBytes}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lf.done)
		lf.pb.run(ctx, rate, liveReaders)
	}()
	w.live = lf
}

// stopLive stops the live fan-out and returns what it published.
func (w *worker) stopLive() (sent, errs uint64) {
	if w.live == nil {
		return 0, 0
	}
	w.live.cancel()
	<-w.live.done
	sent, errs = w.live.pb.sent, w.live.pb.errs
	w.live = nil
	return sent, errs
}

// appendWorkers is how many goroutines of a worker append inbox events;
// each appends one user's K events in order.
const appendWorkers = 16

// stormAway is the step storm_away.
func (w *worker) stormAway(c client.Command) *client.Result {
	w.f.WaitUp(w.f.Plan().DrainTimeout) // sockets still reconnecting from an earlier scenario first
	w.f.ResetTallies()
	w.stormBegan = time.Now()
	w.startLive(c.Rate)
	part := &client.StormPart{}
	tracked := map[*client.User]bool{}
	w.f.Each(func(s *client.Socket) {
		u := s.User()
		if !u.Storm() {
			if s.UpLocked() {
				part.LiveSockets++
			}
			return
		}
		if !s.UpLocked() {
			part.Skipped++ // it reconnects without since, like any other socket
			return
		}
		s.TrackLocked(c.ID, w.f.Plan().ReplayEvents)
		if !tracked[u] {
			tracked[u] = true
			if u.Away() {
				part.StormUsers++
			} else {
				part.StayUsers++
			}
		}
		if u.Away() {
			part.StormSockets++
			s.CloseLocked("replay_away", false)
		} else {
			part.StaySockets++
		}
	})
	start := time.Now()
	part.Appended, part.AppendErrors = w.appendEvents(c.ID)
	part.AppendTime = time.Since(start)
	return &client.Result{Phase: "replay", Up: w.f.Up(), Storm: part}
}

// appendEvents appends K events to the inbox of every storm-group user of
// this worker, through publish.Publisher as a backend would.
func (w *worker) appendEvents(storm uint64) (ok, failed uint64) {
	pl, ctx := w.f.Plan(), w.f.Context()
	pub, err := publish.NewPublisher(w.f.Redis(), publish.PublisherConfig{Prefix: pl.ChannelPrefix})
	if err != nil {
		w.f.Fail(err)
		return 0, 0
	}
	var okN, failedN atomic.Uint64
	queue := make(chan *client.User)
	var wg sync.WaitGroup
	for range appendWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for u := range queue {
				for k := 1; k <= pl.ReplayEvents; k++ {
					buf = client.AppendStormEvent(buf[:0], storm, k, time.Now().UnixNano(), pl.PayloadBytes)
					if _, _, err := pub.AppendToUser(ctx, u.ID(), buf); err != nil {
						failedN.Add(1)
						continue
					}
					okN.Add(1)
				}
			}
		}()
	}
	for _, u := range w.f.Users() {
		if !u.Storm() {
			continue
		}
		select {
		case queue <- u:
		case <-ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	return okN.Load(), failedN.Load()
}

// stormBase is the step storm_base: live fan-out alone for c.Duration.
func (w *worker) stormBase(c client.Command) *client.Result {
	away, _ := w.f.CutWindow()
	t := time.NewTimer(c.Duration)
	select {
	case <-t.C:
	case <-w.f.Context().Done():
		t.Stop()
	}
	w.f.AwaitPublished(w.f.Plan().DrainTimeout)
	before, _ := w.f.CutWindow()
	return &client.Result{Phase: "replay", Storm: &client.StormPart{Away: away.Sparse(), Before: before.Sparse(), BaseT: c.Duration}}
}

// stormStorm is the step storm_storm: every away socket reconnects at once
// (the handshakes in flight bounded by the worker's share of
// --concurrency), with since; it returns when each has its outcome, or
// after c.Timeout.
func (w *worker) stormStorm(c client.Command) *client.Result {
	w.f.CutWindow()
	start := time.Now()
	reconnects := w.f.StartStorm(start)
	deadline := start.Add(c.Timeout)
	for time.Now().Before(deadline) && w.f.Context().Err() == nil {
		waiting := 0
		w.f.Each(func(s *client.Socket) {
			if s.StormPendingLocked() {
				waiting++
			}
		})
		if waiting == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	times := w.f.StormTimes()
	return &client.Result{Phase: "replay", Storm: &client.StormPart{
		Times: times.Sparse(), StormT: elapsed, Reconnects: uint64(reconnects),
	}}
}

// stormCut is the step storm_cut, once every worker's storm is over: the
// live messages published so far arrive, and the storm's live latency and
// handshake windows close. (A worker that holds only live users is done
// with storm_storm at once; its window must last as long as the others'.)
func (w *worker) stormCut() *client.Result {
	w.f.AwaitPublished(w.f.Plan().DrainTimeout)
	lat, hs := w.f.CutWindow()
	return &client.Result{Phase: "replay", Storm: &client.StormPart{Storm: lat.Sparse(), StormHS: hs.Sparse()}}
}

// stormEnd is the step storm_end: live fan-out stops, the messages in
// flight arrive, and every storm-group socket's record is judged.
func (w *worker) stormEnd() *client.Result {
	sent, errs := w.stopLive()
	w.f.WaitUp(w.f.Plan().DrainTimeout)
	w.f.Drain()
	part := &client.StormPart{}
	w.f.Each(func(s *client.Socket) { s.EndTrackLocked(part) })
	r := w.f.Collect("replay", w.stormBegan)
	r.Published, r.PublishErrors = sent, errs
	r.Storm = part
	return r
}
