package redis

import (
	"time"

	"github.com/herald-gw/herald/fanout"
)

// subscriptions is the bookkeeping of the Redis broker's user channels: what
// the gateway wants, what was sent on the current connection, and what Redis
// has confirmed. It does no I/O and is not safe for concurrent use; the Redis
// broker guards it with its mu. Its "users" are keys: user ids for a
// standalone broker, channel names (user and socket) for a cluster's shard.
//
// A user is wanted while its Subscribe count is positive and during the grace
// period after it dropped to zero. The flusher turns the difference between
// wanted and sent into SUBSCRIBE and UNSUBSCRIBE commands (plan); the receive
// loop reports each "subscribe" reply (confirm). A subscription is active
// once every SUBSCRIBE sent for it on the current connection is confirmed
// and the last command sent was a SUBSCRIBE: with SUBSCRIBE, UNSUBSCRIBE,
// SUBSCRIBE in flight, the first confirmation does not activate the third.
type subscriptions struct {
	grace time.Duration // < 0: unsubscribe at the next flush

	users map[string]*userSub
	dirty map[string]struct{} // users whose wanted and sent state may differ
	// graceQ holds the pending unsubscribes in deadline order (the grace is
	// the same for all). An entry is stale when the user's graceUntil has
	// changed since it was queued.
	graceQ []graceItem

	active        int // users with active set
	resyncPending int // users with resync set
}

type userSub struct {
	graceUntil time.Time // zero, or when the pending unsubscribe happens (refs is 0)
	// ready is closed when the subscription becomes active, or when the
	// entry is dropped (every Subscribe undone: nobody waits any more); nil
	// when nobody waits for activation or it happened.
	ready   chan struct{}
	refs    int32 // Subscribe calls minus Unsubscribe calls
	pending int32 // SUBSCRIBEs sent on this connection and not yet confirmed
	sent    bool  // the last command sent on this connection was SUBSCRIBE
	active  bool  // sent, and pending is 0
	// everActive: active was set once since the entry was made, so the
	// user's sockets may have missed messages when it is moved elsewhere.
	everActive bool
	// resync marks a user that was wanted when the connection was made and is
	// not yet active: the broker is ready only when no such user is left.
	resync bool
}

type graceItem struct {
	user  string
	until time.Time
}

func newSubscriptions(grace time.Duration) *subscriptions {
	return &subscriptions{
		grace: grace,
		users: make(map[string]*userSub),
		dirty: make(map[string]struct{}),
	}
}

func (e *userSub) wanted() bool { return e.refs > 0 || !e.graceUntil.IsZero() }

// add counts a Subscribe for user. It returns the channel closed on
// activation and whether the flusher has work.
func (s *subscriptions) add(user string) (<-chan struct{}, bool) {
	e := s.users[user]
	if e == nil {
		e = &userSub{}
		s.users[user] = e
	}
	e.refs++
	e.graceUntil = time.Time{} // cancels a pending unsubscribe
	work := false
	if !e.sent {
		s.dirty[user] = struct{}{}
		work = true
	}
	if e.active {
		return fanout.Confirmed(), work
	}
	if e.ready == nil {
		e.ready = make(chan struct{})
	}
	return e.ready, work
}

// remove counts an Unsubscribe for user, with the grace period unless grace
// is false. It reports false for a user with no Subscribe to balance, and
// otherwise whether the flusher has work (a grace deadline to wait for
// counts as work).
func (s *subscriptions) remove(user string, now time.Time, grace bool) (ok, work bool) {
	e := s.users[user]
	if e == nil || e.refs == 0 {
		return false, false
	}
	e.refs--
	if e.refs > 0 {
		return true, false
	}
	if grace && s.grace > 0 {
		e.graceUntil = now.Add(s.grace)
		s.graceQ = append(s.graceQ, graceItem{user, e.graceUntil})
	} else {
		s.dirty[user] = struct{}{}
	}
	return true, true
}

// expire ends the grace periods that are over at now.
func (s *subscriptions) expire(now time.Time) {
	n := 0
	for _, it := range s.graceQ {
		if it.until.After(now) {
			break
		}
		n++
		if e := s.users[it.user]; e != nil && e.refs == 0 && e.graceUntil.Equal(it.until) {
			e.graceUntil = time.Time{}
			s.dirty[it.user] = struct{}{}
		}
	}
	if n > 0 {
		clear(s.graceQ[:n])
		s.graceQ = s.graceQ[n:]
		if len(s.graceQ) == 0 {
			s.graceQ = nil // let the backing array go
		}
	}
}

// nextDeadline returns the first pending grace deadline, or zero.
func (s *subscriptions) nextDeadline() time.Time {
	if len(s.graceQ) == 0 {
		return time.Time{}
	}
	return s.graceQ[0].until
}

// plan empties the dirty set. When connected, it returns the users to
// SUBSCRIBE and to UNSUBSCRIBE and records them as sent: the caller must send
// them on the connection it was connected to when it called plan. While
// disconnected it only forgets users nobody wants; connected marks the others
// dirty again.
func (s *subscriptions) plan(connected bool) (sub, unsub []string) {
	for user := range s.dirty {
		e := s.users[user]
		if e == nil {
			continue
		}
		wanted := e.wanted()
		switch {
		case !connected:
		case wanted && !e.sent:
			e.sent = true
			e.pending++
			sub = append(sub, user)
		case !wanted && e.sent:
			e.sent = false
			s.setActive(e, false)
			unsub = append(unsub, user)
		}
		if !wanted {
			s.leaveResync(e)
		}
		s.gc(user, e)
	}
	clear(s.dirty)
	return sub, unsub
}

// confirm records Redis's "subscribe" reply for user. It reports false for a
// reply that matches no SUBSCRIBE sent on this connection.
func (s *subscriptions) confirm(user string) bool {
	e := s.users[user]
	if e == nil || e.pending == 0 {
		return false
	}
	e.pending--
	if e.pending == 0 && e.sent {
		s.setActive(e, true)
		s.leaveResync(e)
	}
	s.gc(user, e)
	return true
}

// refused forgets the SUBSCRIBEs of user sent on this connection: Redis
// refused them (MOVED), so none will be confirmed. The user no longer holds
// the connection's readiness back; whoever moves it elsewhere does.
func (s *subscriptions) refused(user string, e *userSub) {
	e.sent, e.pending = false, 0
	s.setActive(e, false)
	s.leaveResync(e)
	s.gc(user, e)
}

// lost forgets everything sent on a connection that is gone: nothing is
// active any more, and users nobody wants are dropped.
func (s *subscriptions) lost() {
	for user, e := range s.users {
		e.sent, e.pending, e.resync = false, 0, false
		s.setActive(e, false)
		s.gc(user, e)
	}
	s.resyncPending = 0
	clear(s.dirty)
}

// connected prepares a new connection: every wanted user becomes dirty, so
// the flusher subscribes it, and is counted in resyncPending until active. It
// returns the number of such users.
func (s *subscriptions) connected() int {
	for user, e := range s.users {
		if !e.wanted() {
			s.drop(user, e)
			continue
		}
		s.dirty[user] = struct{}{}
		if !e.resync {
			e.resync = true
			s.resyncPending++
		}
	}
	return s.resyncPending
}

func (s *subscriptions) setActive(e *userSub, on bool) {
	if e.active == on {
		return
	}
	e.active = on
	if on {
		e.everActive = true
		s.active++
		if e.ready != nil {
			close(e.ready)
			e.ready = nil
		}
	} else {
		s.active--
	}
}

func (s *subscriptions) leaveResync(e *userSub) {
	if e.resync {
		e.resync = false
		s.resyncPending--
	}
}

// gc drops user when nothing remembers it: nobody wants it, nothing is sent
// and no confirmation is due.
func (s *subscriptions) gc(user string, e *userSub) {
	if !e.wanted() && !e.sent && e.pending == 0 {
		s.drop(user, e)
	}
}

// drop forgets user, which nobody wants. A ready channel not yet closed is
// closed: its Subscribe calls were undone before the subscription became
// active, and whoever still waits on it (a RedisCluster moving the channel)
// must not wait for ever.
func (s *subscriptions) drop(user string, e *userSub) {
	s.leaveResync(e)
	if e.ready != nil {
		close(e.ready)
		e.ready = nil
	}
	delete(s.users, user)
}
