package fanouttest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// Recorder is a fanout.Handler that remembers everything it is given.
type Recorder struct {
	mu       sync.Mutex
	msgs     []Received        // guarded by mu
	controls []publish.Control // guarded by mu
	resyncs  int               // guarded by mu
}

// Received is one delivered message.
type Received struct {
	To      publish.Target
	Payload string
}

func (r *Recorder) Deliver(to publish.Target, payload []byte) {
	to.ID = strings.Clone(to.ID) // valid for the call only (fanout.Handler)
	r.mu.Lock()
	r.msgs = append(r.msgs, Received{to, string(payload)})
	r.mu.Unlock()
}

func (r *Recorder) Control(c publish.Control) {
	r.mu.Lock()
	r.controls = append(r.controls, c)
	r.mu.Unlock()
}

func (r *Recorder) Resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

// Has reports whether payload was delivered to to.
func (r *Recorder) Has(to publish.Target, payload string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		if m.To == to && m.Payload == payload {
			return true
		}
	}
	return false
}

// Payloads returns what was delivered to to, in order.
func (r *Recorder) Payloads(to publish.Target) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		if m.To == to {
			out = append(out, m.Payload)
		}
	}
	return out
}

// Messages returns every delivered message, in order.
func (r *Recorder) Messages() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.msgs...)
}

// Count returns how many messages were delivered.
func (r *Recorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

// Controls returns the control commands applied, in order.
func (r *Recorder) Controls() []publish.Control {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]publish.Control(nil), r.controls...)
}

// Resyncs returns how many times Resync was called.
func (r *Recorder) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// WaitFor fails the test unless payload reaches to within a few seconds.
func (r *Recorder) WaitFor(t testing.TB, to publish.Target, payload string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		if r.Has(to, payload) {
			return nil
		}
		return fmt.Errorf("%q for %+v not delivered", payload, to)
	})
}

// WaitReady fails the test unless b becomes ready within a few seconds.
func WaitReady(t testing.TB, b interface{ Ready() bool }) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if b.Ready() {
			return nil
		}
		return fmt.Errorf("broker not ready")
	})
}

// WaitClosed fails the test unless ch is closed within d.
func WaitClosed(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: subscription not confirmed within %s", what, d)
	}
}

// IsClosed reports whether ch is closed, without waiting.
func IsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// MetricValue returns the value of the counter or gauge name with the given
// label pair ("" for none), and whether it exists.
func MetricValue(t testing.TB, g prometheus.Gatherer, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
