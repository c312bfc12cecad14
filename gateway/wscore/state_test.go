package wscore

import "testing"

// TestTransitions lists every state and event: the allowed transitions and
// the refused ones.
func TestTransitions(t *testing.T) {
	const refused = State(255)
	want := map[State][numEvents]State{
		//            start     close     shed      peerClose teardown
		Handshake: {Active, Closing, Closing, refused, Closed},
		Active:    {refused, Closing, Closing, Closing, Closed},
		Closing:   {Closing, refused, refused, Closing, Closed},
		Closed:    {refused, refused, refused, refused, refused},
	}
	for _, from := range []State{Handshake, Active, Closing, Closed} {
		for ev := range numEvents {
			t.Run(from.String()+"/"+ev.String(), func(t *testing.T) {
				to, ok := transition(from, ev)
				w := want[from][ev]
				switch {
				case w == refused && ok:
					t.Fatalf("%s in %s moved to %s, want it refused", ev, from, to)
				case w == refused && to != from:
					t.Fatalf("refused %s in %s changed the state to %s", ev, from, to)
				case w != refused && (!ok || to != w):
					t.Fatalf("%s in %s = %s, %v; want %s", ev, from, to, ok, w)
				}
			})
		}
	}
}
