package membership

import (
	"math"
	"testing"
)

func TestShedCount(t *testing.T) {
	for _, tc := range []struct {
		name      string
		live      int
		avg       float64
		margin    float64
		perTick   float64
		budget    float64
		want      int
		wantCarry float64
	}{
		{"no cluster view", 100, 0, 0.1, 0.1, 0, 0, 0},
		{"at the average", 100, 100, 0.1, 0.1, 0, 0, 0},
		{"within the margin", 110, 100, 0.1, 0.1, 5, 0, 0},
		{"over the margin: rate x live", 300, 200, 0.1, 0.02, 0, 6, 0},
		{"fraction carried", 120, 100, 0.1, 0.01, 0, 1, 0.2},
		{"carry used", 120, 100, 0.1, 0.01, 0.9, 2, 0.1},
		{"small rate accumulates", 120, 100, 0.1, 0.001, 0, 0, 0.12},
		{"never below the average", 300, 200, 0.1, 1, 0, 100, 0},
		{"fractional average rounds up", 300, 200.5, 0.1, 1.001, 0, 99, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, carry := shedCount(tc.live, tc.avg, tc.margin, tc.perTick, tc.budget)
			if n != tc.want || math.Abs(carry-tc.wantCarry) > 1e-9 {
				t.Errorf("shedCount(%d, %v, %v, %v, %v) = %d, %v; want %d, %v", tc.live, tc.avg, tc.margin, tc.perTick, tc.budget, n, carry, tc.want, tc.wantCarry)
			}
		})
	}
}

func TestSteadyView(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prev, cur view
		want      bool
	}{
		{"first tick", view{}, view{replicas: 2, total: 2000}, false},
		{"no replicas", view{}, view{}, false},
		{"unchanged", view{2, 2000}, view{2, 2000}, true},
		{"within the margin", view{2, 2000}, view{2, 2150}, true},
		{"filling: the others' entries lag", view{2, 766}, view{2, 1759}, false},
		{"emptying", view{2, 2000}, view{2, 1000}, false},
		{"a replica joined", view{2, 600}, view{3, 600}, false},
		{"a replica left", view{3, 600}, view{2, 600}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := steady(tc.prev, tc.cur, 0.1); got != tc.want {
				t.Errorf("steady(%+v, %+v, 0.1) = %v; want %v", tc.prev, tc.cur, got, tc.want)
			}
		})
	}
}
