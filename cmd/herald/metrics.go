package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// mainGatherer is what the main listener serves on /metrics: the registry,
// unless --metrics-addr moves /metrics to a listener of its own, so that an
// Ingress or load balancer routing the main port cannot expose it.
func mainGatherer(o *options, reg prometheus.Gatherer) prometheus.Gatherer {
	if o.MetricsAddr != "" {
		return nil
	}
	return reg
}

// metricsServer serves /metrics on --metrics-addr. The zero value (no
// --metrics-addr) serves nothing.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// serveMetrics listens on addr and serves reg's metrics at /metrics until
// Close. A serve error after the start is sent on failed. An empty addr
// serves nothing.
func serveMetrics(addr string, reg prometheus.Gatherer, failed chan<- error) (*metricsServer, error) {
	if addr == "" {
		return &metricsServer{}, nil
	}
	ln, err := listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m := &metricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case failed <- fmt.Errorf("metrics listener: %w", err):
			default:
			}
		}
	}()
	return m, nil
}

// Addr is the metrics listener's address, or "" without one.
func (m *metricsServer) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Close stops the metrics listener; scrapes in flight get a second.
func (m *metricsServer) Close() {
	if m.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
}
