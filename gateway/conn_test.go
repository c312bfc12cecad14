package gateway

import "testing"

func TestIsPing(t *testing.T) {
	for in, want := range map[string]bool{
		`{"type":"ping"}`:          true,
		`{ "type" : "ping" }`:      true,
		`{"type":"ping","id":7}`:   true,
		`{"type":"pong"}`:          false,
		`ping`:                     false,
		`{"type":"pingpong"}`:      false,
		`{"data":{"type":"ping"}}`: false,
		`{"type":"ping"`:           false,
	} {
		if got := isPing([]byte(in)); got != want {
			t.Errorf("isPing(%s) = %v, want %v", in, got, want)
		}
	}
}

// TestConnTransitions lists every reachable state and every event: the
// allowed transitions and the refused ones.
func TestConnTransitions(t *testing.T) {
	const (
		refused = connState(255)
		c       = markCounted
		d       = markDrainSlot
		reg     = connRegistered
		wel     = connWelcomed
		end     = connEnded
	)
	want := map[connState][numConnEvents]connState{
		//                 count      uncount    register   welcome    drain      undrain    end
		connNew:     {c, refused, reg, refused, refused, refused, end},
		c:           {refused, connNew, reg | c, refused, refused, refused, end},
		reg:         {refused, refused, refused, wel, reg | d, refused, end},
		reg | c:     {refused, reg, refused, wel | c, reg | c | d, refused, end},
		reg | d:     {refused, refused, refused, wel | d, refused, reg, end},
		reg | c | d: {refused, reg | d, refused, wel | c | d, refused, reg | c, end},
		wel:         {refused, refused, refused, refused, wel | d, refused, end},
		wel | c:     {refused, wel, refused, refused, wel | c | d, refused, end},
		wel | d:     {refused, refused, refused, refused, refused, wel, end},
		wel | c | d: {refused, wel | d, refused, refused, refused, wel | c, end},
		end:         {refused, refused, refused, refused, refused, refused, refused},
	}
	for from, row := range want {
		for ev := range numConnEvents {
			t.Run(from.String()+"/"+ev.String(), func(t *testing.T) {
				to, ok := transition(from, ev)
				if w := row[ev]; w == refused {
					if ok || to != from {
						t.Fatalf("%s in %s = %s, %v; want it refused, the state unchanged", ev, from, to, ok)
					}
				} else if !ok || to != w {
					t.Fatalf("%s in %s = %s, %v; want %s", ev, from, to, ok, w)
				}
			})
		}
	}
}

// TestConnTo: Conn.to applies a transition once, and reports the state it
// left; a refused one changes nothing.
func TestConnTo(t *testing.T) {
	c := &Conn{}
	for _, step := range []struct {
		ev     connEvent
		wantOK bool
		from   connState
	}{
		{evCount, true, connNew},
		{evCount, false, markCounted},
		{evRegister, true, markCounted},
		{evWelcome, true, connRegistered | markCounted},
		{evDrain, true, connWelcomed | markCounted},
		{evEnd, true, connWelcomed | markCounted | markDrainSlot},
		{evUndrain, false, connEnded},
		{evEnd, false, connEnded},
	} {
		from, ok := c.to(step.ev)
		if ok != step.wantOK || from != step.from {
			t.Fatalf("to(%s) = %s, %v; want %s, %v", step.ev, from, ok, step.from, step.wantOK)
		}
	}
}
