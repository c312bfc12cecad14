// Package testenv starts the real servers herald's tests talk to
// (redis-server, nginx, herald processes) on free loopback ports, and holds a
// small WebSocket client for driving a gateway from tests.
//
// Every server is owned by the test that started it: it is stopped in
// t.Cleanup, and a test may kill and restart it to inject faults. A binary
// that is missing fails the test when CI is set and skips it otherwise, with
// a message naming the Debian package to install.
package testenv
