package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/herald-gw/herald/loadtest"
	"github.com/herald-gw/herald/loadtest/htmlreport"
	"github.com/herald-gw/herald/loadtest/threshold"
)

// writeHTML writes rep as the self-contained page of --html.
func writeHTML(path string, rep *loadtest.Report, checks []threshold.Result, args []string) error {
	h := htmlreport.Report{
		Command: "loadtest " + strings.Join(redactArgs(args), " "),
		Started: rep.Run.Started,
		OK:      rep.OK && !threshold.Failed(checks),
		Summary: summaryRows(rep),
	}
	if d, err := time.ParseDuration(rep.Run.Elapsed); err == nil {
		h.Elapsed = d
	}
	for _, c := range checks {
		ch := htmlreport.Check{Expr: c.Expr, OK: c.OK}
		if c.Found {
			ch.Actual = strconv.FormatFloat(c.Actual, 'g', 6, 64)
		}
		h.Checks = append(h.Checks, ch)
	}
	h.Notes = append(append(h.Notes, rep.Failures...), rep.Warnings...)
	if tl := rep.Timeline; tl != nil {
		h.Timeline, h.Phases, h.Replicas = tl.Samples, tl.Phases, tl.Replicas
	}
	for _, s := range rep.Scenarios {
		if s.Broadcast != nil {
			for _, a := range s.Broadcast.Arrival {
				h.Broadcast = append(h.Broadcast, htmlreport.Arrival{Ms: a.Ms, Share: a.Share})
			}
		}
	}
	var b bytes.Buffer
	if err := htmlreport.Write(&b, h); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// rowRE splits a line of the text report: "  <label>   <value>".
var rowRE = regexp.MustCompile(`^\s{2}(\S[^ ]*(?: [^ ]+)?)\s{2,}(.*)$`)

// summaryRows is the text report as table rows, one section per scenario:
// the page shows the same figures as the terminal.
func summaryRows(rep *loadtest.Report) []htmlreport.Row {
	var text bytes.Buffer
	rep.WriteText(&text)
	var rows []htmlreport.Row
	section := "run"
	for _, line := range strings.Split(text.String(), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "== "):
			section = strings.TrimPrefix(line, "== ")
		case strings.HasPrefix(line, "summary: "), strings.HasPrefix(line, "thresholds"):
			section = "result"
			if v := strings.TrimPrefix(line, "summary: "); v != line {
				rows = append(rows, htmlreport.Row{Section: section, Label: "summary", Value: v})
			}
		case rowRE.MatchString(line):
			m := rowRE.FindStringSubmatch(line)
			rows = append(rows, htmlreport.Row{Section: section, Label: m[1], Value: m[2]})
		default:
			rows = append(rows, htmlreport.Row{Section: section, Label: "", Value: strings.TrimSpace(line)})
		}
	}
	return rows
}

// redactArgs hides the session secret in the command line the page shows.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		switch {
		case a == "--session-secret" || a == "-session-secret":
			if i+1 < len(out) {
				out[i+1] = "…"
			}
		case strings.HasPrefix(a, "--session-secret=") || strings.HasPrefix(a, "-session-secret="):
			out[i] = a[:strings.Index(a, "=")+1] + "…"
		}
	}
	return out
}
