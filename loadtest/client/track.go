package client

import (
	"math/bits"
	"time"
)

// stormTrack is one storm-group socket's record of the storm's events.
// Guarded by its poller's mu.
type stormTrack struct {
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

func newStormTrack(storm uint64, want int, away bool) *stormTrack {
	return &stormTrack{storm: storm, want: uint64(want), away: away, seen: make([]uint64, (want+63)/64)}
}

// onEvent records event k of storm.
func (t *stormTrack) onEvent(storm, k uint64) {
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
func (t *stormTrack) onMarker(count uint64) bool {
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
func (t *stormTrack) onResync() bool {
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
func (t *stormTrack) missing() uint64 {
	var n uint64
	for _, w := range t.seen {
		n += uint64(bits.OnesCount64(w))
	}
	return t.want - n
}

// ok reports whether the socket got what it had to: each event once, in
// order, and for an away socket the replay_complete after them.
func (t *stormTrack) ok() bool {
	if t.dups != 0 || t.ooo != 0 || t.extra != 0 || t.badCount || t.resync || t.missing() != 0 {
		return false
	}
	return !t.away || t.marker
}

// StormPart is one worker's figures for one step of replay; each step
// fills its own.
type StormPart struct {
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
	Away   Sparse        `json:"away"`   // live latency while away and appending
	Before Sparse        `json:"before"` // live latency just before the storm
	BaseT  time.Duration `json:"base_t,omitempty"`
	// rp_storm, and rp_cut for Storm and StormHS
	Storm      Sparse        `json:"storm"`    // live latency during the storm
	StormHS    Sparse        `json:"storm_hs"` // handshakes during the storm
	Times      Sparse        `json:"times"`    // storm start → replay_complete or resync
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
func (rp *StormPart) addTrack(t *stormTrack) {
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

// since returns the since a connect attempt of s asks for, if it asks: in
// the storm, the storm group's sockets come back from the inbox_id of the
// last frame they saw (empty if none carried one: herald answers resync).
func (p *poller) since(s *Socket) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.track == nil {
		return "", false
	}
	return s.inboxID, true
}

// stormDoneLocked records that an away socket's storm ended now.
func (p *poller) stormDoneLocked(now time.Time) {
	p.t.stormTimes.Record(now.Sub(time.Unix(0, p.f.stormStart.Load())))
}

// TrackLocked starts the socket's record of the events of storm, of which
// it must get events (K), each once and in order.
func (s *Socket) TrackLocked(storm uint64, events int) {
	s.track = newStormTrack(storm, events, s.user.away)
}

// StormPendingLocked reports whether the socket is an away one whose
// storm outcome (replay_complete or resync) is not known yet.
func (s *Socket) StormPendingLocked() bool {
	return s.track != nil && s.track.away && !s.track.done && s.state != sockGone
}

// EndTrackLocked adds the socket's record, if it has one, to part and
// drops it.
func (s *Socket) EndTrackLocked(part *StormPart) {
	if s.track != nil {
		part.addTrack(s.track)
		s.track = nil
	}
}

// StartStorm starts the storm at start: every away socket, closed for
// it, reconnects at once with since. It returns how many do.
func (f *Fleet) StartStorm(start time.Time) int {
	f.stormStart.Store(start.UnixNano())
	var todo []*Socket
	f.each(func(_ *poller, s *Socket) {
		if s.track != nil && s.track.away && s.state == sockGone && !s.open {
			s.state = sockDown
			f.gone.Add(-1)
			todo = append(todo, s)
		}
	})
	if f.pl.ArrivalRate > 0 {
		f.arriveAgain(todo, start)
		return len(todo)
	}
	for _, s := range todo {
		f.pending.Add(1)
		go f.reconnect(s)
	}
	return len(todo)
}

// StormTimes is, over the phase, the time from the storm's start to each
// away socket's replay_complete or resync.
func (f *Fleet) StormTimes() Histogram {
	var times Histogram
	for _, p := range f.pollers {
		p.mu.Lock()
		times.Merge(&p.t.stormTimes)
		p.mu.Unlock()
	}
	return times
}
