// Package fault holds herald's fault suite: Go tests that run real herald
// processes, redis-server and nginx on loopback, break them (SIGSTOP,
// SIGKILL, blackholed peers, descriptor exhaustion, slow clients, bad
// frames) and check what herald promises in docs/RELIABILITY.md. Every
// case is bounded in time and count and cleans up after itself.
//
// The quick cases run with `go test ./deploy/fault/`; the chaos test needs the
// build tag: `go test -tags chaos -run TestChaos -v ./deploy/fault/`.
package fault
