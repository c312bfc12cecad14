//go:build soak

package gateway_test

// stressScale with the soak tag: more sockets, many more bursts.
var stressScale = struct{ sockets, bursts, burst, size int }{
	sockets: 400, bursts: 200, burst: 64, size: 1024,
}
