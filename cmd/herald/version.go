package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is herald's release version. Release builds set it with
// -ldflags "-X main.version=v1.2.3"; otherwise it is the main module's
// version as the Go toolchain stamped it (from the VCS tag or commit), or
// "devel".
var version = ""

// commit is the VCS revision herald was built from. Builds set it with
// -ldflags "-X main.commit=$(git rev-parse HEAD)" (make build and the
// Dockerfile do); otherwise it comes from the toolchain's VCS stamp, when
// the build had one.
var commit = ""

// buildInfo is what --version prints and herald_build_info carries.
type buildInfo struct {
	Version   string // release or module version, "devel" when unknown
	Commit    string // VCS revision, with "-dirty" when the tree was modified; "unknown" without VCS data
	GoVersion string // the toolchain that built the binary
}

// readBuildInfo reads the version, the commit and the Go version from the
// binary.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		var rev string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && b.Commit == "" {
			b.Commit = rev
			if dirty {
				b.Commit += "-dirty"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// printVersion writes the one line herald --version prints.
func printVersion(w io.Writer, b buildInfo) {
	fmt.Fprintf(w, "herald %s (commit %s, %s, %s/%s)\n", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// registerBuildInfo adds herald_build_info{version,commit,goversion} 1, as
// Prometheus exporters do, so that dashboards can tell builds apart.
func registerBuildInfo(reg prometheus.Registerer, b buildInfo) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "herald_build_info",
		Help:        "Always 1; the labels name the build: version, VCS commit and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}
