package gateway

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestAuthBlockerWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := newAuthBlocker(3, time.Minute, 5*time.Minute, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, zap.NewNop(), nil)
	steps := []struct {
		at          time.Duration
		fail        bool
		wantBlocked bool
	}{
		{0, true, false},
		{time.Second, true, false},
		{61 * time.Second, true, false}, // the window restarted: 1 failure
		{62 * time.Second, true, false},
		{63 * time.Second, true, true}, // 3 within the window
		{63*time.Second + 5*time.Minute - time.Nanosecond, false, true},
		{63*time.Second + 5*time.Minute, false, false},
	}
	for i, st := range steps {
		now := t0.Add(st.at)
		if st.fail {
			b.failed("203.0.113.7", now)
		}
		if got, _ := b.blocked("203.0.113.7", now); got != st.wantBlocked {
			t.Errorf("step %d (+%v): blocked = %v, want %v", i+1, st.at, got, st.wantBlocked)
		}
	}
	for range 10 {
		b.failed("10.1.2.3", t0)
	}
	if got, _ := b.blocked("10.1.2.3", t0); got {
		t.Error("a trusted proxy's address was blocked")
	}
}

func TestAuthBlockerBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := newAuthBlocker(100, time.Minute, time.Minute, nil, zap.NewNop(), nil)
	for i := range 3 * maxTrackedIPs {
		b.failed(fmt.Sprintf("2001:db8::%x", i), t0)
	}
	n := 0
	for i := range b.shards {
		n += len(b.shards[i].ips)
	}
	if n > maxTrackedIPs {
		t.Errorf("tracked %d addresses, want at most %d", n, maxTrackedIPs)
	}
	// Once their window has passed, the addresses are forgotten.
	b.failed("2001:db8:1::1", t0.Add(2*time.Minute))
	for i := range 3 * maxTrackedIPs {
		b.failed(fmt.Sprintf("2001:db8::%x", i), t0.Add(3*time.Minute))
	}
	n = 0
	for i := range b.shards {
		n += len(b.shards[i].ips)
	}
	if n > maxTrackedIPs {
		t.Errorf("after expiry: tracked %d addresses, want at most %d", n, maxTrackedIPs)
	}
}
