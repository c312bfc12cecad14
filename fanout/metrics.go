package fanout

import (
	"errors"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/prometheus/client_golang/prometheus"
)

// The values of herald_broker_messages_total's kind label.
const (
	kindUser      = "user"
	kindSocket    = "socket"
	kindBroadcast = "broadcast"
	kindControl   = "control"
)

// Metrics are a broker's Prometheus collectors, shared by the brokers of
// this package and of fanout/redis. Both brokers export the same
// names, so dashboards work in either mode; every labelled series exists from
// the start, at 0. The collectors are created even without a Registerer, so
// that the code that updates them needs no nil checks.
type Metrics struct {
	messages      *prometheus.CounterVec // by kind; messages handed to the Handler
	dropped       *prometheus.CounterVec // by reason; messages not handed over
	Reconnects    prometheus.Counter
	Subscriptions prometheus.Gauge // active user subscriptions
	Up            prometheus.Gauge

	// The labelled series, resolved once for the receive path.
	msgUser, msgSocket, msgBroadcast, msgControl prometheus.Counter
	drop                                         map[string]prometheus.Counter // read-only after NewMetrics
}

// NewMetrics creates the collectors and registers them with reg, if not nil.
// A collector that reg already holds (a second broker in one process, or a
// broker re-created in a test) is reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_broker_messages_total",
			Help: "Messages the broker handed to the gateway, by kind (user, socket, broadcast, control).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_broker_dropped_total",
			Help: "Messages the broker received but did not hand to the gateway, by reason (bad_channel, bad_control, unknown_op).",
		}, []string{"reason"}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_broker_reconnects_total",
			Help: "Times the broker's connection to the bus was lost and then restored with every subscription.",
		}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_broker_subscriptions",
			Help: "User channels this replica is subscribed to (confirmed by the bus).",
		}),
		Up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_broker_up",
			Help: "1 while the broker is connected and every static subscription is active, else 0.",
		}),
	}
	if reg != nil {
		var errs []error
		m.messages = register(reg, m.messages, &errs)
		m.dropped = register(reg, m.dropped, &errs)
		m.Reconnects = register(reg, m.Reconnects, &errs)
		m.Subscriptions = register(reg, m.Subscriptions, &errs)
		m.Up = register(reg, m.Up, &errs)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	m.msgUser = m.messages.WithLabelValues(kindUser)
	m.msgSocket = m.messages.WithLabelValues(kindSocket)
	m.msgBroadcast = m.messages.WithLabelValues(kindBroadcast)
	m.msgControl = m.messages.WithLabelValues(kindControl)
	m.drop = make(map[string]prometheus.Counter, len(DropReasons))
	for _, r := range DropReasons {
		m.drop[r] = m.dropped.WithLabelValues(r)
	}
	return m, nil
}

// register registers c, or returns the equal collector reg already holds.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, err)
	return c
}

// Delivered counts a message handed over for t.
func (m *Metrics) Delivered(t publish.Target) {
	switch t.Kind {
	case publish.ToUser:
		m.msgUser.Inc()
	case publish.ToSocket:
		m.msgSocket.Inc()
	default:
		m.msgBroadcast.Inc()
	}
}

// ControlApplied counts a control command handed over.
func (m *Metrics) ControlApplied() { m.msgControl.Inc() }

// Drop counts a message not handed over, for reason (one of DropReasons).
func (m *Metrics) Drop(reason string) { m.drop[reason].Inc() }
