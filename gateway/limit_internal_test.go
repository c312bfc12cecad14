package gateway

import (
	"testing"
	"time"
)

func TestGradientLimit(t *testing.T) {
	const hi = 256
	tests := []struct {
		name     string
		initial  int
		phases   []limitPhase
		min, max int // the limit after the last phase
	}{
		{
			name:    "steady latency below the floor grows the limit to its cap",
			initial: 32,
			phases:  []limitPhase{{n: 2000, rtt: 10 * time.Millisecond, busy: true}},
			min:     hi, max: hi,
		},
		{
			name:    "an unused limit does not grow",
			initial: 32,
			phases:  []limitPhase{{n: 2000, rtt: 10 * time.Millisecond, busy: false}},
			min:     32, max: 32,
		},
		{
			name:    "latency ten times its least shrinks the limit to its floor",
			initial: 128,
			phases: []limitPhase{
				{n: 50, rtt: 40 * time.Millisecond, busy: true},
				{n: 2000, rtt: 400 * time.Millisecond, busy: true},
			},
			min: minLimit, max: minLimit,
		},
		{
			name:    "latency within twice its least holds the limit up",
			initial: 64,
			phases: []limitPhase{
				{n: 50, rtt: 40 * time.Millisecond, busy: true},
				{n: 2000, rtt: 70 * time.Millisecond, busy: true},
			},
			min: 64, max: hi,
		},
		{
			name:    "the limit recovers once the slow samples leave the window",
			initial: 64,
			phases: []limitPhase{
				{n: 2000, rtt: 400 * time.Millisecond, busy: true},
				{n: 4000, rtt: 20 * time.Millisecond, busy: true},
			},
			min: hi, max: hi,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGradientLimit(tt.initial, minLimit, hi)
			now := time.Unix(0, 0)
			for _, p := range tt.phases {
				for range p.n {
					now = now.Add(20 * time.Millisecond)
					inflight := 1
					if p.busy {
						inflight = g.current()
					}
					g.sample(now, p.rtt, inflight)
				}
			}
			if got := g.current(); got < tt.min || got > tt.max {
				t.Errorf("limit = %d, want [%d, %d]", got, tt.min, tt.max)
			}
		})
	}
}

type limitPhase struct {
	n    int
	rtt  time.Duration
	busy bool // the limit is used in full
}
