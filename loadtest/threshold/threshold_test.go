package threshold

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, expr string
		want       Threshold
		err        bool
	}{
		{"less than", "delivery.p99_ms<10", Threshold{Metric: "delivery.p99_ms", Op: "<", Value: 10}, false},
		{"equal zero", "sockets.failed==0", Threshold{Metric: "sockets.failed", Op: "==", Value: 0}, false},
		{"spaces and decimals", " broadcast.last_ms <= 250.5 ", Threshold{Metric: "broadcast.last_ms", Op: "<=", Value: 250.5}, false},
		{"underscores in numbers", "sockets.ok>=15_000", Threshold{Metric: "sockets.ok", Op: ">=", Value: 15000}, false},
		{"not equal", "ok!=0", Threshold{Metric: "ok", Op: "!=", Value: 0}, false},
		{"no operator", "delivery.p99_ms", Threshold{}, true},
		{"no number", "delivery.p99_ms<fast", Threshold{}, true},
		{"k6 function syntax", "p(99)<10", Threshold{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.expr)
			if tt.err {
				if !errors.Is(err, ErrSyntax) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrSyntax", tt.expr, got, err)
				}
				return
			}
			if err != nil || got.Metric != tt.want.Metric || got.Op != tt.want.Op || got.Value != tt.want.Value {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", tt.expr, got, err, tt.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	report := map[string]any{
		"sockets":  map[string]any{"ok": 100, "failed": 2},
		"delivery": map[string]any{"p99_ms": 65.61},
		"ok":       true,
	}
	tests := []struct {
		expr  string
		ok    bool
		found bool
	}{
		{"delivery.p99_ms<10", false, true},
		{"delivery.p99_ms<100", true, true},
		{"sockets.failed==0", false, true},
		{"sockets.ok>=100", true, true},
		{"ok==1", true, true},
		{"broadcast.last_ms<100", false, false}, // not in the report: fails
		{"sockets<1", false, false},             // an object, not a figure
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			th, err := Parse(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := Check([]Threshold{th}, report)
			if err != nil {
				t.Fatal(err)
			}
			if rs[0].OK != tt.ok || rs[0].Found != tt.found {
				t.Errorf("%s: ok %v found %v (actual %v); want ok %v found %v", tt.expr, rs[0].OK, rs[0].Found, rs[0].Actual, tt.ok, tt.found)
			}
			if Failed(rs) == tt.ok {
				t.Errorf("Failed = %v with ok %v", Failed(rs), tt.ok)
			}
			if s := rs[0].String(); strings.HasPrefix(s, "ok") != tt.ok {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

func TestParseAllReportsEveryBadOne(t *testing.T) {
	_, err := ParseAll([]string{"a<1", "bad", "worse<"})
	if err == nil || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), `"worse<"`) {
		t.Errorf("ParseAll: %v; want both bad expressions named", err)
	}
}
