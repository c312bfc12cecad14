package loadtest

import (
	"context"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
)

// The replay scenario: a reconnect storm against herald's per-user inbox.
//
// The users split in two: the live users, which fan-out reaches all along
// (plain PUBLISHes, as in fanout), and the storm group, the last
// ReplayUsers users. With two worker processes or more, the live users
// and the storm group are held by different processes, so that the storm's
// handshakes do not share a Go scheduler with the sockets whose latency
// measures it. The parent runs five steps on every worker:
//
//	rp_away   live fan-out starts; the away part of the storm group closes
//	          all its sockets; K events are appended to the inbox of each
//	          storm-group user (publish.Publisher.AppendToUser): the away
//	          ones miss them, the others get them live
//	rp_base   live fan-out alone for a while: the latency before the storm
//	rp_storm  every away socket reconnects at once (fresh token, since = the
//	          inbox_id of the last frame it saw) while live fan-out goes on;
//	          it ends when each has its replay_complete or resync
//	rp_cut    once every worker's storm is over: the storm's live latency
//	          and handshake windows close
//	rp_end    live fan-out stops; every socket's accounting is settled
//
// Each window's live latency is that of the deliveries during it, and of
// the messages published in it that arrive just after (awaitPublished).
//
// A storm-group socket must get exactly its K events, each once, in order
// (k = 1…K), then replay_complete with count K (away sockets), or K live
// events (the others). Events are told apart by the storm's id, so that
// nothing of an earlier run counts.

// replayTrack is one storm-group socket's record of the storm's events.
// Guarded by its poller's mu.
type replayTrack struct {
	storm    uint64   // the storm's id; events of another are ignored
	want     uint64   // K
	away     bool     // closed for the storm; its reconnect is the storm
	seen     []uint64 // bit k-1: event k arrived
	maxK     uint64   // the highest k that arrived
	dups     uint64   // events that arrived again
	ooo      uint64   // events that arrived after a later one, or (away) after the marker
	extra    uint64   // events numbered outside 1…K
	sess     uint64   // events received in the current session
	marker   bool     // replay_complete arrived
	badCount bool     // a replay_complete's count was not the session's events
	resync   bool     // resync arrived instead of a replay_complete
	done     bool     // away: its storm outcome (marker or resync) is known
}

func newReplayTrack(storm uint64, want int, away bool) *replayTrack {
	return &replayTrack{storm: storm, want: uint64(want), away: away, seen: make([]uint64, (want+63)/64)}
}

// onEvent records event k of storm.
func (t *replayTrack) onEvent(storm, k uint64) {
	if storm != t.storm {
		return
	}
	if k < 1 || k > t.want {
		t.extra++
		return
	}
	t.sess++
	w, b := (k-1)/64, uint64(1)<<((k-1)%64)
	if t.seen[w]&b != 0 {
		t.dups++
		return
	}
	t.seen[w] |= b
	if k < t.maxK || (t.away && t.marker) {
		t.ooo++
	}
	t.maxK = max(t.maxK, k)
}

// onMarker records a replay_complete with its count; it reports whether
// it ended an away socket's storm.
func (t *replayTrack) onMarker(count uint64) bool {
	if count != t.sess {
		t.badCount = true
	}
	t.marker = true
	if t.away && !t.done {
		t.done = true
		return true
	}
	return false
}

// onResync records a resync; it reports whether it ended an away socket's
// storm. A resync after the replay_complete is the broker's (herald lost
// Redis), not the inbox's answer, and live accounting excuses it.
func (t *replayTrack) onResync() bool {
	if t.marker {
		return false
	}
	t.resync = true
	if t.away && !t.done {
		t.done = true
		return true
	}
	return false
}

// missing is how many of the K events never arrived.
func (t *replayTrack) missing() uint64 {
	var n uint64
	for _, w := range t.seen {
		n += uint64(bits.OnesCount64(w))
	}
	return t.want - n
}

// ok reports whether the socket got what it had to: each event once, in
// order, and for an away socket the replay_complete after them.
func (t *replayTrack) ok() bool {
	if t.dups != 0 || t.ooo != 0 || t.extra != 0 || t.badCount || t.resync || t.missing() != 0 {
		return false
	}
	return !t.away || t.marker
}

// replayPart is one worker's figures for one step of replay; each step
// fills its own.
type replayPart struct {
	// rp_away
	StormUsers   uint64        `json:"storm_users,omitempty"`
	StormSockets uint64        `json:"storm_sockets,omitempty"`
	StayUsers    uint64        `json:"stay_users,omitempty"`
	StaySockets  uint64        `json:"stay_sockets,omitempty"`
	Skipped      uint64        `json:"skipped,omitempty"` // storm-group sockets not up at the start
	LiveSockets  uint64        `json:"live_sockets,omitempty"`
	Appended     uint64        `json:"appended,omitempty"`
	AppendErrors uint64        `json:"append_errors,omitempty"`
	AppendTime   time.Duration `json:"append_time,omitempty"`
	// rp_base
	Away   sparseHist    `json:"away"`   // live latency while away and appending
	Before sparseHist    `json:"before"` // live latency just before the storm
	BaseT  time.Duration `json:"base_t,omitempty"`
	// rp_storm, and rp_cut for Storm and StormHS
	Storm      sparseHist    `json:"storm"`    // live latency during the storm
	StormHS    sparseHist    `json:"storm_hs"` // handshakes during the storm
	Times      sparseHist    `json:"times"`    // storm start → replay_complete or resync
	StormT     time.Duration `json:"storm_t,omitempty"`
	Reconnects uint64        `json:"reconnects,omitempty"`
	// rp_end
	Replayed       uint64 `json:"replayed,omitempty"`
	Wrong          uint64 `json:"wrong,omitempty"` // replay_complete, but not exactly the K events in order
	Resyncs        uint64 `json:"resyncs,omitempty"`
	NotReplayed    uint64 `json:"not_replayed,omitempty"`
	StayOK         uint64 `json:"stay_ok,omitempty"`
	StayBad        uint64 `json:"stay_bad,omitempty"`
	Dups           uint64 `json:"dups,omitempty"`
	SocketsDup     uint64 `json:"sockets_dup,omitempty"`
	Missing        uint64 `json:"missing,omitempty"`
	SocketsMissing uint64 `json:"sockets_missing,omitempty"`
	OutOfOrder     uint64 `json:"ooo,omitempty"`
	SocketsOOO     uint64 `json:"sockets_ooo,omitempty"`
	Extra          uint64 `json:"extra,omitempty"`
	BadCount       uint64 `json:"bad_count,omitempty"`
}

// addTrack adds one socket's outcome.
func (rp *replayPart) addTrack(t *replayTrack) {
	if t.away {
		switch {
		case t.resync:
			rp.Resyncs++
		case !t.marker:
			rp.NotReplayed++
		case t.ok():
			rp.Replayed++
		default:
			rp.Wrong++
		}
	} else if t.ok() {
		rp.StayOK++
	} else {
		rp.StayBad++
	}
	if m := t.missing(); m > 0 && !t.resync {
		rp.Missing += m
		rp.SocketsMissing++
	}
	if t.dups > 0 {
		rp.Dups += t.dups
		rp.SocketsDup++
	}
	if t.ooo > 0 {
		rp.OutOfOrder += t.ooo
		rp.SocketsOOO++
	}
	rp.Extra += t.extra
	if t.badCount {
		rp.BadCount++
	}
}

// liveFanout is replay's fan-out to the live users, running across the
// scenario's steps. Owned by the command loop.
type liveFanout struct {
	pb     *publisher
	cancel context.CancelFunc
	done   chan struct{}
}

func liveReaders(u *user) bool { return !u.storm && !u.flooding.Load() }

func (w *worker) startLive(rate float64) {
	if !slices.ContainsFunc(w.users, func(u *user) bool { return !u.storm }) {
		return // a storm-only worker: its rate is 0, which would mean flat out
	}
	ctx, cancel := context.WithCancel(w.ctx)
	lf := &liveFanout{pb: &publisher{w: w, size: w.pl.PayloadBytes}, cancel: cancel, done: make(chan struct{})}
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

// cutWindow returns the live latency and the handshakes recorded since the
// last cut, and starts a new window.
func (w *worker) cutWindow() (lat, hs Histogram) {
	for _, p := range w.pollers {
		p.mu.Lock()
		lat.Merge(&p.t.window)
		hs.Merge(&p.t.hsWindow)
		p.t.window.Reset()
		p.t.hsWindow.Reset()
		p.mu.Unlock()
	}
	return lat, hs
}

// awaitPublished waits, up to timeout, until every live socket that is up
// has the messages published to its user so far: a window's cut then holds
// the latency of what was published in it, late ones included.
func (w *worker) awaitPublished(timeout time.Duration) {
	top := make(map[*user]uint64, len(w.users))
	for _, u := range w.users {
		if !u.storm {
			top[u] = u.assigned.Load()
		}
	}
	deadline := time.Now().Add(timeout)
	for w.ctx.Err() == nil {
		waiting := 0
		w.each(func(_ *poller, s *socket) {
			if t, ok := top[s.user]; ok && s.state == sockUp && s.startSeq < t && s.maxSeq < t {
				waiting++
			}
		})
		if waiting == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// appendWorkers is how many goroutines of a worker append inbox events;
// each appends one user's K events in order.
const appendWorkers = 16

// replayAway is the step rp_away.
func (w *worker) replayAway(c command) *phaseResult {
	w.waitUp(w.pl.DrainTimeout) // sockets still reconnecting from an earlier scenario first
	w.resetTallies()
	w.rpBegan = time.Now()
	w.startLive(c.Rate)
	part := &replayPart{}
	tracked := map[*user]bool{}
	w.each(func(p *poller, s *socket) {
		if !s.user.storm {
			if s.state == sockUp {
				part.LiveSockets++
			}
			return
		}
		if s.state != sockUp {
			part.Skipped++ // it reconnects without since, like any other socket
			return
		}
		s.rp = newReplayTrack(c.ID, w.pl.ReplayEvents, s.user.away)
		if !tracked[s.user] {
			tracked[s.user] = true
			if s.user.away {
				part.StormUsers++
			} else {
				part.StayUsers++
			}
		}
		if s.user.away {
			part.StormSockets++
			p.clientCloseLocked(s, "replay_away", false)
		} else {
			part.StaySockets++
		}
	})
	start := time.Now()
	part.Appended, part.AppendErrors = w.appendEvents(c.ID)
	part.AppendTime = time.Since(start)
	return &phaseResult{Phase: "replay", Up: w.up.Load(), Replay: part}
}

// appendEvents appends K events to the inbox of every storm-group user of
// this worker, through publish.Publisher as a backend would.
func (w *worker) appendEvents(storm uint64) (ok, failed uint64) {
	pub, err := publish.NewPublisher(w.rdb, publish.PublisherConfig{Prefix: w.pl.ChannelPrefix})
	if err != nil {
		w.fail(err)
		return 0, 0
	}
	var okN, failedN atomic.Uint64
	queue := make(chan *user)
	var wg sync.WaitGroup
	for range appendWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for u := range queue {
				for k := 1; k <= w.pl.ReplayEvents; k++ {
					buf = appendReplayEvent(buf[:0], storm, k, time.Now().UnixNano(), w.pl.PayloadBytes)
					if _, _, err := pub.AppendToUser(w.ctx, u.id, buf); err != nil {
						failedN.Add(1)
						continue
					}
					okN.Add(1)
				}
			}
		}()
	}
	for _, u := range w.users {
		if !u.storm {
			continue
		}
		select {
		case queue <- u:
		case <-w.ctx.Done():
		}
	}
	close(queue)
	wg.Wait()
	return okN.Load(), failedN.Load()
}

// replayBase is the step rp_base: live fan-out alone for c.Duration.
func (w *worker) replayBase(c command) *phaseResult {
	away, _ := w.cutWindow()
	t := time.NewTimer(c.Duration)
	select {
	case <-t.C:
	case <-w.ctx.Done():
		t.Stop()
	}
	w.awaitPublished(w.pl.DrainTimeout)
	before, _ := w.cutWindow()
	return &phaseResult{Phase: "replay", Replay: &replayPart{Away: away.sparse(), Before: before.sparse(), BaseT: c.Duration}}
}

// replayStorm is the step rp_storm: every away socket reconnects at once
// (the handshakes in flight bounded by the worker's share of
// --concurrency), with since; it returns when each has its outcome, or
// after c.Timeout.
func (w *worker) replayStorm(c command) *phaseResult {
	w.cutWindow()
	start := time.Now()
	w.rpStart.Store(start.UnixNano())
	var todo []*socket
	w.each(func(_ *poller, s *socket) {
		if s.rp != nil && s.rp.away && s.state == sockGone && !s.open {
			s.state = sockDown
			w.gone.Add(-1)
			todo = append(todo, s)
		}
	})
	for _, s := range todo {
		w.pending.Add(1)
		go w.reconnect(s)
	}
	deadline := start.Add(c.Timeout)
	for time.Now().Before(deadline) && w.ctx.Err() == nil {
		waiting := 0
		w.each(func(_ *poller, s *socket) {
			if s.rp != nil && s.rp.away && !s.rp.done && s.state != sockGone {
				waiting++
			}
		})
		if waiting == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	var times Histogram
	for _, p := range w.pollers {
		p.mu.Lock()
		times.Merge(&p.t.rpTimes)
		p.mu.Unlock()
	}
	return &phaseResult{Phase: "replay", Replay: &replayPart{
		Times: times.sparse(), StormT: elapsed, Reconnects: uint64(len(todo)),
	}}
}

// replayCut is the step rp_cut, once every worker's storm is over: the
// live messages published so far arrive, and the storm's live latency and
// handshake windows close. (A worker that holds only live users is done
// with rp_storm at once; its window must last as long as the others'.)
func (w *worker) replayCut() *phaseResult {
	w.awaitPublished(w.pl.DrainTimeout)
	lat, hs := w.cutWindow()
	return &phaseResult{Phase: "replay", Replay: &replayPart{Storm: lat.sparse(), StormHS: hs.sparse()}}
}

// replayEnd is the step rp_end: live fan-out stops, the messages in flight
// arrive, and every storm-group socket's record is judged.
func (w *worker) replayEnd() *phaseResult {
	sent, errs := w.stopLive()
	w.waitUp(w.pl.DrainTimeout)
	w.drain()
	part := &replayPart{}
	w.each(func(_ *poller, s *socket) {
		if s.rp != nil {
			part.addTrack(s.rp)
			s.rp = nil
		}
	})
	r := w.collect("replay", w.rpBegan)
	r.Published, r.PublishErrors = sent, errs
	r.Replay = part
	return r
}

// since returns the since a connect attempt of s asks for, if it asks: in
// replay, the storm group's sockets come back from the inbox_id of the
// last frame they saw (empty if none carried one: herald answers resync).
func (p *poller) since(s *socket) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.rp == nil {
		return "", false
	}
	return s.inboxID, true
}

// replayDoneLocked records that an away socket's storm ended now.
func (p *poller) replayDoneLocked(now time.Time) {
	p.t.rpTimes.Record(now.Sub(time.Unix(0, p.w.rpStart.Load())))
}
