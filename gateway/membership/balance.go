package membership

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/gateway/membership/presence"
)

// balancer keeps this replica's entry in the shared membership and, with
// Config.Rebalance, sheds sockets while the replica holds more than its
// share. It runs on one goroutine (Membership.Run), which owns every field.
type balancer struct {
	m        *Membership
	budget   float64    // sockets the rate allows to shed, carried between ticks
	inflight []inflight // shed sockets that may not have reconnected yet
	prev     view       // the membership as the previous tick saw it

	shed     prometheus.Counter
	average  prometheus.Gauge
	replicas prometheus.Gauge
}

// view is what one tick saw of the membership: the replicas and their
// total socket count.
type view struct{ replicas, total int }

// steady reports whether the membership moved so little between two ticks
// that its average can be trusted: the same replicas, and a total that
// changed by at most margin. Each replica writes its count at its own moment
// of the interval, so while the cluster fills (or empties) the others'
// entries lag behind this replica's, and a replica that merely filled first
// looks over its share.
func steady(prev, cur view, margin float64) bool {
	if prev.replicas != cur.replicas || cur.replicas == 0 {
		return false
	}
	return math.Abs(float64(cur.total-prev.total)) <= margin*float64(max(prev.total, cur.total))
}

// inflight counts n sockets shed, told to reconnect before until.
type inflight struct {
	until time.Time
	n     int
}

func newBalancer(m *Membership) (*balancer, error) {
	b := &balancer{
		m: m,
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_rebalance_shed_total", Help: "Sockets told to reconnect elsewhere (reconnect frame, then 1012) because this replica held more than its share.",
		}),
		average: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_cluster_average_sockets", Help: "This replica's view of the average socket count of the live replicas.",
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_cluster_replicas", Help: "Live replicas in this replica's view of the shared membership.",
		}),
	}
	if reg := m.cfg.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{b.shed, b.average, b.replicas} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("membership: register metrics: %w", err)
			}
		}
	}
	return b, nil
}

// run joins the membership, refreshes this replica's entry every Interval
// while the broker is ready and rebalances, until stop is closed; it
// leaves as soon as drain is closed (the replica drains).
func (b *balancer) run(stop, drain <-chan struct{}) {
	m, cfg := b.m, &b.m.cfg
	every := cfg.Interval
	call := func(f func(ctx context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		defer cancel()
		return f(ctx)
	}
	if err := call(func(ctx context.Context) error { return cfg.Store.Join(ctx, cfg.NodeID) }); err != nil {
		m.log.Warn("presence: join failed; retrying at the next refresh", zap.Error(err))
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-drain:
			// Out of the average at once: the others must not shed
			// toward a replica that is going away.
			if err := call(func(ctx context.Context) error { return cfg.Store.Leave(ctx, cfg.NodeID) }); err != nil {
				m.log.Warn("presence: leave failed; the entry expires on its own", zap.Error(err))
			}
			<-stop
			return
		case <-t.C:
		}
		if !cfg.Broker.Ready() {
			// Not taking sockets (Redis unreachable, or not yet
			// connected): let the entry expire rather than be counted.
			continue
		}
		now := time.Now()
		live := cfg.Sockets.Sockets()
		var r presence.Replicas
		err := call(func(ctx context.Context) (err error) {
			r, err = cfg.Store.Refresh(ctx, cfg.NodeID, live+b.inFlight(now))
			return err
		})
		if err != nil {
			m.log.Warn("presence: refresh failed", zap.Error(err))
			continue
		}
		if cfg.UserPresence {
			if r.Rejoined {
				// Our entry had expired (a stall) or Redis lost its
				// data: our users' counts may be gone. Rebuild them.
				m.log.Warn("presence: this replica's entry was gone; rebuilding its per-user counts")
				m.users.requestResync()
			} else {
				m.users.signal() // Redis answers: a rebuild asked for by a failed Apply can run
			}
		}
		total := 0
		for _, n := range r.Sockets {
			total += n
		}
		avg := float64(total) / float64(max(1, len(r.Sockets)))
		b.average.Set(avg)
		b.replicas.Set(float64(len(r.Sockets)))
		cur := view{replicas: len(r.Sockets), total: total}
		if cfg.Rebalance && steady(b.prev, cur, cfg.RebalanceMargin) {
			b.balance(now, live, avg)
		}
		b.prev = cur
	}
}

// inFlight returns how many shed sockets may still be on their way to
// another replica. They stay in this replica's reported count meanwhile,
// so that the cluster's total, and its average, do not dip.
func (b *balancer) inFlight(now time.Time) int {
	n, keep := 0, b.inflight[:0]
	for _, f := range b.inflight {
		if f.until.After(now) {
			n += f.n
			keep = append(keep, f)
		}
	}
	clear(b.inflight[len(keep):])
	b.inflight = keep
	return n
}

// balance sheds sockets when live is over (1+margin) × avg.
func (b *balancer) balance(now time.Time, live int, avg float64) {
	m, cfg := b.m, &b.m.cfg
	var n int
	n, b.budget = shedCount(live, avg, cfg.RebalanceMargin, cfg.RebalanceRate*cfg.Interval.Seconds(), b.budget)
	if n == 0 {
		return
	}
	shed := cfg.Shed.Shed(n)
	if shed == 0 {
		return
	}
	b.shed.Add(float64(shed))
	b.inflight = append(b.inflight, inflight{until: now.Add(cfg.DrainWindow + 2*cfg.Interval), n: shed})
	m.log.Info("rebalancing: sockets told to reconnect elsewhere",
		zap.Int("shed", shed), zap.Int("sockets", live), zap.Float64("cluster_average", avg))
}

// shedCount decides how many of live sockets to shed in one tick, given the
// cluster average avg: none unless live > (1+margin) × avg; otherwise
// perTick × live sockets (perTick is the rate per second × the tick), with
// the fraction of a socket carried to the next tick in budget, and never so
// many that live falls below avg.
func shedCount(live int, avg, margin, perTick, budget float64) (n int, carry float64) {
	if avg <= 0 || float64(live) <= (1+margin)*avg {
		return 0, 0
	}
	budget += perTick * float64(live)
	whole := math.Floor(budget)
	n = max(0, min(int(whole), live-int(math.Ceil(avg))))
	return n, budget - whole // only the fraction: no burst later
}
