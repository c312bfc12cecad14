package client

import (
	"sync/atomic"
	"time"
)

// user is one user id of the run. Its sockets all live in one worker, whose
// single publisher numbers the user's messages 1, 2, 3…
type User struct {
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
type Socket struct {
	idx           int
	user          *User
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
	track    *stormTrack   // storm: set on the storm group's sockets for the scenario
}

// onSeq records fan-out message seq. It is called with p.mu held.
func (s *Socket) onSeq(seq uint64, t *tally) {
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
func (s *Socket) excuse(top uint64, t *tally) {
	lost, sockets, maxLost := t.lost, t.lostSockets, t.maxLost
	s.settle(top, t)
	t.excused += t.lost - lost
	t.lost, t.lostSockets, t.maxLost = lost, sockets, maxLost
}

// settle closes the accounting of the session's messages up to top: the
// seqs in (startSeq, top] are expected, those not received are lost.
func (s *Socket) settle(top uint64, t *tally) {
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

// ID is the user's id.
func (u *User) ID() string { return u.id }

// Channel is the Redis channel of the user's fan-out, with the prefix.
func (u *User) Channel() string { return u.channel }

// NextSeq hands out the user's next sequence number for a PUBLISH.
func (u *User) NextSeq() uint64 { return u.assigned.Add(1) }

// Flooding reports whether the user's sockets are the slow ones being
// flooded (only the flood publisher writes to them then).
func (u *User) Flooding() bool { return u.flooding.Load() }

// Storm reports whether the user is in the storm group.
func (u *User) Storm() bool { return u.storm }

// Away reports whether the user's sockets close for the storm.
func (u *User) Away() bool { return u.away }

// The methods below that end in Locked run under the socket's poller lock,
// as Fleet.Each holds it.

// User is the socket's user.
func (s *Socket) User() *User { return s.user }

// UpLocked reports whether the socket is welcomed and read.
func (s *Socket) UpLocked() bool { return s.state == sockUp }

// SlowLocked reports whether the socket is welcomed and deliberately not
// read.
func (s *Socket) SlowLocked() bool { return s.state == sockSlow }

// SlowCandidate reports whether the socket was dialled with a small
// receive buffer, to be made slow by the slow scenario.
func (s *Socket) SlowCandidate() bool { return s.slowCandidate }

// BroadcastLocked is the id of the last broadcast the socket received.
func (s *Socket) BroadcastLocked() uint64 { return s.bcID }

// CloseLocked closes the socket as a browser tab would (close frame
// 1000), and reconnects it at once with a fresh token when reconnect is
// set.
func (s *Socket) CloseLocked(reason string, reconnect bool) {
	s.p.clientCloseLocked(s, reason, reconnect)
}

// MarkSlowLocked stops reading the socket (see poller.markSlowLocked).
func (s *Socket) MarkSlowLocked() { s.p.markSlowLocked(s) }

// WakeLocked reads a slow socket again, with a large receive buffer: what
// it left unread (a shed socket's close frame sits behind it) arrives.
func (s *Socket) WakeLocked() { s.p.wakeLocked(s) }
