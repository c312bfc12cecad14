//go:build pprof

package main

// Profiling build: `go build -tags pprof ./cmd/herald`. With
// HERALD_PPROF_ADDR set (a loopback address such as 127.0.0.1:6060), the
// process serves net/http/pprof there, for measuring the load tester's
// scenarios (docs/BENCHMARKS.md); HERALD_MEMPROFILERATE sets
// runtime.MemProfileRate (bytes between heap samples). Release builds do
// not contain it.

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // profiling build only, loopback only
	"os"
	"runtime"
	"strconv"
)

func init() {
	if n, err := strconv.Atoi(os.Getenv("HERALD_MEMPROFILERATE")); err == nil && n > 0 {
		runtime.MemProfileRate = n // finer heap profiles, at a cost per allocation
	}
	addr := os.Getenv("HERALD_PPROF_ADDR")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintln(os.Stderr, "herald: HERALD_PPROF_ADDR must be a loopback host:port")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald: pprof:", err)
		os.Exit(2)
	}
	go func() { _ = http.Serve(ln, http.DefaultServeMux) }()
}
