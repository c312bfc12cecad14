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
