// Package fanouttest helps the brokers' tests: Recorder is a fanout.Handler
// that keeps what it is given, and the waits and metric reads the broker
// suites share. It is safe for concurrent use and holds no lock while it
// calls a test's code.
package fanouttest
