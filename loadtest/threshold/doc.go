// Package threshold checks a load-test report against pass/fail criteria
// given on the command line, as k6's thresholds do:
//
//	loadtest … --threshold 'delivery.p99_ms<10' --threshold 'sockets.failed==0'
//
// A threshold names a figure of the JSON report by its dotted path
// (delivery.p99_ms, sockets.failed, broadcast.last_ms,
// server.cpu_us_per_delivery, …), a comparison (<, <=, >, >=, ==, !=) and a
// number. It holds when the comparison is true of the figure; a figure the
// run did not produce (its scenario did not run) fails the threshold, so a
// misspelt name is never silently passed.
//
// The package is pure: Parse reads the expressions, Check evaluates them
// against any value that marshals to the report's JSON. No state is shared.
package threshold
