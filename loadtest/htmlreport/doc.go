// Package htmlreport writes a load-test run as one self-contained HTML page
// (loadtest --html report.html): the summary table and the thresholds,
// then charts drawn in the browser by inline JavaScript into SVG: connect
// rate and welcomed/refused over time, delivery latency percentiles over
// time, each replica's CPU and resident memory, and the broadcast's arrival
// curve. The page loads nothing at view time: no script, style, font or
// image comes from the network, so it can be mailed or archived as is.
//
// The package knows nothing of how the figures were measured: the load
// tester fills a Report and calls Write. Write is pure and safe for
// concurrent use.
package htmlreport
