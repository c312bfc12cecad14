//go:build !soak

package gateway_test

// stressScale is TestStressSmallReceiveBuffers' size in go test: a few
// hundred sockets, a few MiB each, well under a minute under -race on two
// cores.
var stressScale = struct{ sockets, bursts, burst, size int }{
	sockets: 200, bursts: 12, burst: 64, size: 1024,
}
