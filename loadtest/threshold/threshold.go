package threshold

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrSyntax is returned by Parse for an expression it cannot read.
var ErrSyntax = errors.New("threshold: want <figure><op><number>, e.g. delivery.p99_ms<10 (ops: < <= > >= == !=)")

// Threshold is one criterion: Metric Op Value.
type Threshold struct {
	Expr   string  `json:"expr"`   // as given
	Metric string  `json:"metric"` // dotted path in the JSON report
	Op     string  `json:"op"`     // <, <=, >, >=, ==, !=
	Value  float64 `json:"value"`  // the bound
}

// Result is a Threshold checked against one report.
type Result struct {
	Threshold
	Actual float64 `json:"actual"` // the figure; 0 when the report lacks it
	Found  bool    `json:"found"`  // the report has the figure
	OK     bool    `json:"ok"`     // the comparison holds (false when not found)
}

var exprRE = regexp.MustCompile(`^\s*([A-Za-z0-9_.]+)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9][0-9_]*(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*$`)

// Parse reads one expression.
func Parse(expr string) (Threshold, error) {
	m := exprRE.FindStringSubmatch(expr)
	if m == nil {
		return Threshold{}, fmt.Errorf("%q: %w", expr, ErrSyntax)
	}
	v, err := strconv.ParseFloat(strings.ReplaceAll(m[3], "_", ""), 64)
	if err != nil {
		return Threshold{}, fmt.Errorf("%q: %w", expr, ErrSyntax)
	}
	return Threshold{Expr: strings.TrimSpace(expr), Metric: m[1], Op: m[2], Value: v}, nil
}

// ParseAll reads every expression, reporting every one it cannot read.
func ParseAll(exprs []string) ([]Threshold, error) {
	var out []Threshold
	var errs []error
	for _, e := range exprs {
		t, err := Parse(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}

// Check evaluates ts against report, any value whose JSON form is the
// report (a *loadtest.Report, or a map decoded from --json's file).
func Check(ts []Threshold, report any) ([]Result, error) {
	b, err := json.Marshal(report)
	if err != nil {
		return nil, fmt.Errorf("threshold: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("threshold: the report is not a JSON object: %w", err)
	}
	out := make([]Result, 0, len(ts))
	for _, t := range ts {
		r := Result{Threshold: t}
		if v, ok := lookup(doc, t.Metric); ok {
			r.Actual, r.Found = v, true
			r.OK = compare(v, t.Op, t.Value)
		}
		out = append(out, r)
	}
	return out, nil
}

// Failed reports whether any result did not hold.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if !r.OK {
			return true
		}
	}
	return false
}

// String is one line for the text report: "✓ delivery.p99_ms<10 (4.2)".
func (r Result) String() string {
	switch {
	case !r.Found:
		return fmt.Sprintf("FAIL %s (the report has no %s)", r.Expr, r.Metric)
	case r.OK:
		return fmt.Sprintf("ok   %s (%s)", r.Expr, strconv.FormatFloat(r.Actual, 'g', 6, 64))
	default:
		return fmt.Sprintf("FAIL %s (%s)", r.Expr, strconv.FormatFloat(r.Actual, 'g', 6, 64))
	}
}

// lookup follows a dotted path through nested objects to a number (a
// boolean counts as 1 or 0).
func lookup(doc map[string]any, path string) (float64, bool) {
	var cur any = doc
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		if cur, ok = m[part]; !ok {
			return 0, false
		}
	}
	switch v := cur.(type) {
	case float64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func compare(a float64, op string, b float64) bool {
	switch op {
	case "<":
		return a < b
	case "<=":
		return a <= b
	case ">":
		return a > b
	case ">=":
		return a >= b
	case "==":
		return a == b
	case "!=":
		return a != b
	}
	return false
}
