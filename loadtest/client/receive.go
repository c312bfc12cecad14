package client

import (
	"bytes"
	"time"
)

// textLocked handles one text message.
func (p *poller) textLocked(s *Socket, m []byte, now time.Time) {
	switch {
	case bytes.HasPrefix(m, prefixFanout):
		seq, ok := leadingUint(m[len(prefixFanout):])
		if !ok {
			return
		}
		p.total++
		if s.state != sockUp {
			return // a slow socket draining what it left unread
		}
		p.t.delivered++
		if ts, ok := fieldUint(m, keyT); ok {
			d := now.Sub(time.Unix(0, int64(ts)))
			p.t.latency.Record(d)
			p.t.interval.Record(d)
			p.t.window.Record(d)
		}
		s.onSeq(seq, p.t)
	case bytes.HasPrefix(m, prefixBroadcast):
		id, ok := leadingUint(m[len(prefixBroadcast):])
		if !ok || id <= s.bcID {
			return
		}
		s.bcID = id
		if id == p.f.bcArmed.Load() {
			p.t.bcGot++
			if ts, ok := fieldUint(m, keyT); ok {
				p.t.bc.Record(now.Sub(time.Unix(0, int64(ts))))
			}
		}
	case bytes.HasPrefix(m, prefixInbox):
		id, rest, ok := inboxFrame(m)
		if !ok {
			return
		}
		s.inboxID = string(id)
		if s.track != nil && bytes.HasPrefix(rest, typeStormEv) {
			storm, ok1 := leadingUint(rest[len(typeStormEv):])
			k, ok2 := fieldUint(rest, keyK)
			if ok1 && ok2 {
				s.track.onEvent(storm, k)
			}
		}
	case bytes.HasPrefix(m, prefixComplete):
		if id := fieldInboxID(m); id != nil {
			s.inboxID = string(id)
		}
		if s.track != nil {
			count, _ := fieldUint(m, keyCount)
			if s.track.onMarker(count) {
				p.stormDoneLocked(now)
			}
		}
	case bytes.Contains(m, typeReconnect):
		if ms, ok := fieldUint(m, keyAfter); ok {
			s.after = time.Duration(ms) * time.Millisecond
		}
	case bytes.Contains(m, typeResync):
		if id := fieldInboxID(m); id != nil {
			// The inbox's answer to since: the gap cannot be closed;
			// refetch, and continue from this id. Nothing live was lost.
			s.inboxID = string(id)
		} else {
			// herald lost its broker and says messages may be missing:
			// those published before this frame are excused, not lost.
			p.t.resyncs++
			if s.state == sockUp {
				s.excuse(s.user.assigned.Load(), p.t)
			}
		}
		if s.track != nil && s.track.onResync() {
			p.stormDoneLocked(now)
		}
	}
}

// ArmBroadcast starts a phase that waits for broadcast id.
func (f *Fleet) ArmBroadcast(id uint64) {
	f.ResetTallies()
	f.bcArmed.Store(id)
}

// BroadcastGot is how many sockets received the armed broadcast.
func (f *Fleet) BroadcastGot() uint64 {
	var got uint64
	for _, p := range f.pollers {
		p.mu.Lock()
		got += p.t.bcGot
		p.mu.Unlock()
	}
	return got
}
