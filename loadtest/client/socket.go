package loadtest

import (
	"sync/atomic"
	"time"
)

// user is one user id of the run. Its sockets all live in one worker, whose
// single publisher numbers the user's messages 1, 2, 3…
type user struct {
	id       string
	channel  string        // the Redis channel user:<id>, with the prefix
	assigned atomic.Uint64 // last sequence number handed to a PUBLISH
	flooding atomic.Bool   // slow: only the flood publisher writes to this user
	storm    bool          // replay: in the storm group (read-only)
	away     bool          // replay: its sockets close for the storm (read-only)
}

// sockState is where a socket is in its life.
type sockState uint8

const (
	sockDown sockState = iota // not connected: connecting, or waiting to reconnect
	sockUp                    // welcomed, read by its poller
	sockSlow                  // welcomed, deliberately not read
	sockGone                  // stopped for good (close code says do not retry, or the run ends)
)

// socket is one simulated browser tab: it connects, reads, answers pings
// and reconnects as the close codes say. Fields below mu are guarded by its
// poller's mu; the rest are set once, or owned by the one connect attempt
// in flight (a socket has at most one).
type socket struct {
	idx           int
	user          *user
	p             *poller
	slowCandidate bool

	// Owned by the connect path.
	attempts int // consecutive failed attempts, for the backoff
	invalid  int // consecutive 4002 closes

	// Guarded by p.mu.
	state    sockState
	started  bool // its first attempt was made
	open     bool // fd is this socket's connection
	fd       int
	pend     []byte // a partial frame left by the last read
	frag     []byte // a fragmented text message being reassembled
	fragging bool
	startSeq uint64        // the user's last assigned seq when this session (or phase) began
	maxSeq   uint64        // highest seq received this session (≥ startSeq)
	window   uint64        // bit i: seq maxSeq-i was received
	got      uint64        // distinct seqs above startSeq received this session
	bcID     uint64        // last broadcast received
	after    time.Duration // reconnect hint of a {"type":"reconnect"} frame; -1 none
	inboxID  string        // the inbox_id of the last frame that carried one
	rp       *replayTrack  // replay: set on the storm group's sockets for the scenario
}

// onSeq records fan-out message seq. It is called with p.mu held.
func (s *socket) onSeq(seq uint64, t *tally) {
	switch {
	case seq <= s.startSeq:
		if s.maxSeq > s.startSeq {
			t.ooo++
		}
		// Published before this socket was welcomed: it may or may not
		// arrive, and is not counted as expected.
	case seq > s.maxSeq:
		shift := seq - s.maxSeq
		if shift >= 64 {
			s.window = 0
		} else {
			s.window <<= shift
		}
		s.window |= 1
		s.maxSeq = seq
		s.got++
	default:
		off := s.maxSeq - seq
		switch {
		case off >= 64:
			t.ooo++
		case s.window&(1<<off) != 0:
			t.dups++
			t.dupSockets[s] = struct{}{}
		default:
			s.window |= 1 << off
			s.got++
			t.ooo++
			t.oooSockets[s] = struct{}{}
		}
	}
}

// excuse settles the session up to top like settle, except that what is
// missing is counted as announced by a resync frame rather than lost.
func (s *socket) excuse(top uint64, t *tally) {
	lost, sockets, maxLost := t.lost, t.lostSockets, t.maxLost
	s.settle(top, t)
	t.excused += t.lost - lost
	t.lost, t.lostSockets, t.maxLost = lost, sockets, maxLost
}

// settle closes the accounting of the session's messages up to top: the
// seqs in (startSeq, top] are expected, those not received are lost.
func (s *socket) settle(top uint64, t *tally) {
	if top > s.startSeq {
		want := top - s.startSeq
		t.sent += want
		if s.got < want {
			lost := want - s.got
			t.lost += lost
			t.lostSockets++
			t.maxLost = max(t.maxLost, lost)
		}
	}
	s.startSeq = max(top, s.maxSeq)
	s.maxSeq = s.startSeq
	s.window = 0
	s.got = 0
}
