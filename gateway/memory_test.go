package gateway

import "testing"

func TestBurstWatch(t *testing.T) {
	tests := []struct {
		name   string
		counts []uint64 // handshake count at each tick
		want   []bool
	}{
		{"no handshakes", []uint64{0, 0, 0}, []bool{false, false, false}},
		{"a burst, then quiet", []uint64{600, 1200, 1210, 1220}, []bool{false, false, true, false}},
		{"a burst still running", []uint64{600, 1200, 1800, 2400}, []bool{false, false, false, false}},
		{"steady trickle below the burst", []uint64{40, 80, 120, 160}, []bool{false, false, false, false}},
		{"a slow burst, then quiet", []uint64{400, 800, 1000, 1010}, []bool{false, false, false, true}},
		{"two bursts, two releases", []uint64{1500, 1500, 3000, 3000}, []bool{false, true, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := burstWatch{burst: releaseBurst, quiet: releaseQuiet}
			for i, c := range tc.counts {
				if got := w.tick(c); got != tc.want[i] {
					t.Fatalf("tick %d (count %d): %v, want %v", i, c, got, tc.want[i])
				}
			}
		})
	}
}
