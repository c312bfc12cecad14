package redis

import (
	"slices"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/fanouttest"
)

// planned runs plan(true) and returns its lists sorted.
func planned(s *subscriptions) (sub, unsub []string) {
	sub, unsub = s.plan(true)
	slices.Sort(sub)
	slices.Sort(unsub)
	return sub, unsub
}

func wantPlan(t *testing.T, s *subscriptions, wantSub, wantUnsub []string) {
	t.Helper()
	sub, unsub := planned(s)
	if !slices.Equal(sub, wantSub) || !slices.Equal(unsub, wantUnsub) {
		t.Fatalf("plan = subscribe %q, unsubscribe %q; want %q, %q", sub, unsub, wantSub, wantUnsub)
	}
}

func TestSubscriptionsConfirmActivates(t *testing.T) {
	s := newSubscriptions(time.Second)
	ch, work := s.add("u")
	if !work || fanouttest.IsClosed(ch) {
		t.Fatalf("add: work %v, closed %v; want work and open", work, fanouttest.IsClosed(ch))
	}
	if again, _ := s.add("u"); again != ch {
		t.Fatal("a second Subscribe before confirmation returned another channel")
	}
	wantPlan(t, s, []string{"u"}, nil)
	wantPlan(t, s, nil, nil) // nothing new
	if fanouttest.IsClosed(ch) {
		t.Fatal("closed before confirmation")
	}
	if !s.confirm("u") || !fanouttest.IsClosed(ch) || s.active != 1 {
		t.Fatalf("after confirm: closed %v, active %d; want closed, 1", fanouttest.IsClosed(ch), s.active)
	}
	if s.confirm("u") {
		t.Fatal("a second confirmation was accepted")
	}
	if later, work := s.add("u"); !fanouttest.IsClosed(later) || work {
		t.Fatalf("Subscribe of an active user: closed %v, work %v; want closed, no work", fanouttest.IsClosed(later), work)
	}
}

// With SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE in flight, the first confirmation
// must not activate the second SUBSCRIBE.
func TestSubscriptionsStaleConfirmation(t *testing.T) {
	s := newSubscriptions(-1) // no grace
	ch, _ := s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	if ok, _ := s.remove("u", time.Now(), true); !ok {
		t.Fatal("remove refused")
	}
	wantPlan(t, s, nil, []string{"u"})
	ch2, _ := s.add("u")
	if ch2 != ch {
		t.Fatal("the channel changed although the first subscription never became active")
	}
	wantPlan(t, s, []string{"u"}, nil)

	s.confirm("u") // the first SUBSCRIBE's reply
	if fanouttest.IsClosed(ch) || s.active != 0 {
		t.Fatal("the stale confirmation activated the new subscription")
	}
	s.confirm("u") // the second's
	if !fanouttest.IsClosed(ch) || s.active != 1 {
		t.Fatal("the second confirmation did not activate")
	}
}

// A confirmation after the user was unsubscribed again activates nothing;
// the user is then dropped, which closes its ready channel.
func TestSubscriptionsConfirmAfterUnsubscribe(t *testing.T) {
	s := newSubscriptions(-1)
	ch, _ := s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	s.remove("u", time.Now(), true)
	wantPlan(t, s, nil, []string{"u"})
	if fanouttest.IsClosed(ch) {
		t.Fatal("ready closed while a confirmation is still due")
	}
	s.confirm("u")
	if s.active != 0 || s.users["u"] != nil {
		t.Fatalf("after the confirmation: active %d, user kept %v; want 0, dropped", s.active, s.users["u"] != nil)
	}
	if !fanouttest.IsClosed(ch) {
		t.Fatal("ready of a dropped user still open")
	}
}

// A user whose every Subscribe is undone before anything was sent (or while
// disconnected) is dropped at the next plan, and its ready channel closed:
// whoever still waits on it (a RedisCluster moving the channel) must not
// wait for ever.
func TestSubscriptionsDropClosesReady(t *testing.T) {
	for _, connected := range []bool{true, false} {
		s := newSubscriptions(-1)
		ch, _ := s.add("u")
		s.remove("u", time.Now(), false)
		s.plan(connected)
		if s.users["u"] != nil || !fanouttest.IsClosed(ch) {
			t.Fatalf("connected %v: user kept %v, ready closed %v; want dropped, closed", connected, s.users["u"] != nil, fanouttest.IsClosed(ch))
		}
	}
	// Dropped by a new connection: unwanted, sent on the lost one.
	s := newSubscriptions(-1)
	ch, _ := s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	s.remove("u", time.Now(), false)
	s.lost()
	if s.users["u"] != nil || !fanouttest.IsClosed(ch) {
		t.Fatalf("after lost: user kept %v, ready closed %v; want dropped, closed", s.users["u"] != nil, fanouttest.IsClosed(ch))
	}
}

func TestSubscriptionsGrace(t *testing.T) {
	const grace = time.Second
	t0 := time.Now()
	s := newSubscriptions(grace)
	s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	s.confirm("u")

	if ok, work := s.remove("u", t0, true); !ok || !work {
		t.Fatalf("remove = %v, %v", ok, work)
	}
	if got := s.nextDeadline(); !got.Equal(t0.Add(grace)) {
		t.Fatalf("nextDeadline = %v, want %v", got, t0.Add(grace))
	}
	s.expire(t0.Add(grace / 2))
	wantPlan(t, s, nil, nil) // still in grace

	// A Subscribe within the grace cancels the unsubscribe.
	if ch, _ := s.add("u"); !fanouttest.IsClosed(ch) {
		t.Fatal("Subscribe within the grace returned an open channel")
	}
	s.expire(t0.Add(2 * grace))
	wantPlan(t, s, nil, nil)

	// Unsubscribe again: it happens once the grace is over.
	s.remove("u", t0.Add(3*grace), true)
	s.expire(t0.Add(3*grace + grace/2))
	wantPlan(t, s, nil, nil)
	s.expire(t0.Add(4 * grace))
	wantPlan(t, s, nil, []string{"u"})
	if s.active != 0 || len(s.users) != 0 || len(s.graceQ) != 0 {
		t.Fatalf("after the unsubscribe: active %d, users %d, queue %d; want 0, 0, 0", s.active, len(s.users), len(s.graceQ))
	}
	// A new Subscribe needs a new confirmation.
	ch, _ := s.add("u")
	if fanouttest.IsClosed(ch) {
		t.Fatal("Subscribe after the unsubscribe returned a closed channel")
	}
}

func TestSubscriptionsCounted(t *testing.T) {
	s := newSubscriptions(-1)
	s.add("u")
	s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	s.remove("u", time.Now(), true)
	wantPlan(t, s, nil, nil) // one Subscribe left
	s.remove("u", time.Now(), true)
	wantPlan(t, s, nil, []string{"u"})
	if ok, _ := s.remove("u", time.Now(), true); ok {
		t.Fatal("an unbalanced remove was accepted")
	}
	if ok, _ := s.remove("never", time.Now(), true); ok {
		t.Fatal("remove of an unknown user was accepted")
	}
}

func TestSubscriptionsReconnect(t *testing.T) {
	s := newSubscriptions(time.Second)
	active, _ := s.add("active")
	s.add("pending")
	wantPlan(t, s, []string{"active", "pending"}, nil)
	s.confirm("active")
	if !fanouttest.IsClosed(active) {
		t.Fatal("not active")
	}

	s.lost()
	if s.active != 0 || s.resyncPending != 0 {
		t.Fatalf("after lost: active %d, resync %d", s.active, s.resyncPending)
	}
	// While disconnected: a new user, and an active one is asked for again.
	down, _ := s.add("down")
	again, _ := s.add("active")
	if fanouttest.IsClosed(down) || fanouttest.IsClosed(again) {
		t.Fatal("a Subscribe while disconnected returned a closed channel")
	}
	if sub, unsub := s.plan(false); sub != nil || unsub != nil {
		t.Fatalf("plan while disconnected = %q, %q", sub, unsub)
	}

	if n := s.connected(); n != 3 {
		t.Fatalf("connected = %d, want 3", n)
	}
	wantPlan(t, s, []string{"active", "down", "pending"}, nil)
	for i, u := range []string{"active", "down", "pending"} {
		if s.resyncPending != 3-i {
			t.Fatalf("resyncPending = %d, want %d", s.resyncPending, 3-i)
		}
		s.confirm(u)
	}
	if s.resyncPending != 0 || s.active != 3 || !fanouttest.IsClosed(down) || !fanouttest.IsClosed(again) {
		t.Fatalf("after the confirmations: resync %d, active %d", s.resyncPending, s.active)
	}
}

// A user dropped before its resubscription is sent leaves the resync set.
func TestSubscriptionsResyncDropped(t *testing.T) {
	s := newSubscriptions(-1)
	s.add("u")
	s.add("v")
	wantPlan(t, s, []string{"u", "v"}, nil)
	s.lost()
	s.connected()
	s.remove("u", time.Now(), true)
	wantPlan(t, s, []string{"v"}, nil)
	if s.resyncPending != 1 {
		t.Fatalf("resyncPending = %d, want 1", s.resyncPending)
	}
	s.confirm("v")
	if s.resyncPending != 0 {
		t.Fatalf("resyncPending = %d, want 0", s.resyncPending)
	}
	// Confirmations from the lost connection are not counted.
	if s.confirm("u") {
		t.Fatal("a confirmation for an unknown user was accepted")
	}
}

// Nobody-wanted users are forgotten at reconnection, also while in grace
// if the grace ended while disconnected.
func TestSubscriptionsForget(t *testing.T) {
	t0 := time.Now()
	s := newSubscriptions(time.Second)
	s.add("u")
	wantPlan(t, s, []string{"u"}, nil)
	s.confirm("u")
	s.remove("u", t0, true)
	s.lost()
	s.expire(t0.Add(time.Hour))
	s.plan(false)
	if len(s.users) != 0 {
		t.Fatalf("users = %d, want 0", len(s.users))
	}
	if n := s.connected(); n != 0 {
		t.Fatalf("connected = %d, want 0", n)
	}
}

// An Unsubscribe without grace (a socket channel) is planned at once, even
// when the subscriptions have a grace period.
func TestSubscriptionsRemoveWithoutGrace(t *testing.T) {
	s := newSubscriptions(time.Hour)
	s.add("socket:{n1.a}")
	wantPlan(t, s, []string{"socket:{n1.a}"}, nil)
	s.confirm("socket:{n1.a}")
	if ok, work := s.remove("socket:{n1.a}", time.Now(), false); !ok || !work {
		t.Fatalf("remove = %v, %v", ok, work)
	}
	if !s.nextDeadline().IsZero() {
		t.Fatal("a grace deadline was queued")
	}
	wantPlan(t, s, nil, []string{"socket:{n1.a}"})
}
