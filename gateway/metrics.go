package gateway

import (
	"fmt"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Every labelled series
// that can occur is created at start, so that it reads 0 before it happens.
type metrics struct {
	connects       prometheus.Counter
	disconnects    *prometheus.CounterVec // by close code
	authFailures   *prometheus.CounterVec // by reason
	tokensIssued   prometheus.Counter
	delivered      prometheus.Counter
	acceptBackoffs prometheus.Counter
	handshake      prometheus.Histogram

	messages                                     *prometheus.CounterVec // by kind
	msgUser, msgSocket, msgBroadcast, msgControl prometheus.Counter     // messages' series
	droppedVec                                   *prometheus.CounterVec // by reason
	dropped                                      [numDropReasons]prometheus.Counter
	deliveryLatency                              prometheus.Histogram
}

// authFailureReasons are the values of herald_auth_failures_total's label.
var authFailureReasons = []string{
	"missing_session", "invalid_session", "expired_session", "origin_not_allowed",
	"rate_limited", "queue_timeout", "token_expired", "token_invalid", "token_reused", "replay_unavailable",
	"ip_blocked",
}

// otherCodeLabel is herald_disconnects_total's label for every close code
// herald does not know: a client may send any code from 3000 to 4999, and
// each would otherwise become a series of its own.
const otherCodeLabel = "other"

// labelledCodes are the close codes herald_disconnects_total keeps as their
// own label value: the codes herald sends or ends sockets with, and 1005
// (a client's close frame without a code).
var labelledCodes = func() map[ws.StatusCode]bool {
	m := map[ws.StatusCode]bool{ws.StatusNoStatusRcvd: true}
	for _, d := range knownCodes {
		m[d.Code] = true
	}
	return m
}()

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_connects_total", Help: "Sockets that completed the handshake and got the welcome frame.",
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_disconnects_total", Help: "Sockets closed, by close code (1006: no close handshake; other: a code herald does not know, sent by a client).",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_auth_failures_total", Help: "Refused token requests and socket handshakes, by reason.",
		}, []string{"reason"}),
		tokensIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_tokens_issued_total", Help: "WS tokens minted.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_messages_delivered_total", Help: "Frames queued to sockets by fan-out (one per target socket).",
		}),
		acceptBackoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_accept_backoffs_total", Help: "Accept calls that failed for lack of file descriptors or memory and backed off.",
		}),
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herald_handshake_seconds", Help: "Time from the /ws request to the queued welcome frame.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_messages_total", Help: "Messages the gateway received from the broker, by kind (user, socket, broadcast, control).",
		}, []string{"kind"}),
		droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_messages_dropped_total", Help: "Messages not relayed to any socket, by reason (too_large, invalid_utf8, reserved_type).",
		}, []string{"reason"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from a message's receipt at this replica to the end of the socket write that sent it; one observation per write, for the oldest message it completed.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 18),
		}),
	}
	m.msgUser = m.messages.WithLabelValues("user")
	m.msgSocket = m.messages.WithLabelValues("socket")
	m.msgBroadcast = m.messages.WithLabelValues("broadcast")
	m.msgControl = m.messages.WithLabelValues("control")
	for i, r := range dropReasons {
		m.dropped[i] = m.droppedVec.WithLabelValues(r)
	}
	for _, d := range knownCodes {
		m.disconnects.WithLabelValues(codeLabel(d))
	}
	m.disconnects.WithLabelValues(codeLabel(&Disconnect{Code: ws.StatusNoStatusRcvd}))
	m.disconnects.WithLabelValues(otherCodeLabel)
	for _, r := range authFailureReasons {
		m.authFailures.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.connects, m.disconnects, m.authFailures, m.tokensIssued,
		m.delivered, m.acceptBackoffs, m.handshake, m.messages, m.droppedVec, m.deliveryLatency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_slow_consumers_total", Help: "Sockets closed with 4009 because their send queue passed its cap.",
		}, func() float64 { return float64(s.core.Stats().SlowConsumers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_write_timeouts_total", Help: "Sockets dropped because their output made no progress within the write timeout.",
		}, func() float64 { return float64(s.core.Stats().WriteTimeouts) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_sockets", Help: "Open sockets on this replica.",
		}, func() float64 { return float64(s.reg.total.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_users", Help: "Users with at least one socket on this replica.",
		}, func() float64 { return float64(s.reg.nusers.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_draining", Help: "1 while a graceful shutdown is in progress.",
		}, func() float64 {
			if s.draining.Load() {
				return 1
			}
			return 0
		}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
