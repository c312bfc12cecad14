package admit

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestAuthBlockerWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := NewAuthBlocker(3, time.Minute, 5*time.Minute, 0, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, zap.NewNop(), nil)
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
			b.Failed("203.0.113.7", now)
		}
		if got, _ := b.Blocked("203.0.113.7", now); got != st.wantBlocked {
			t.Errorf("step %d (+%v): blocked = %v, want %v", i+1, st.at, got, st.wantBlocked)
		}
	}
	for range 10 {
		b.Failed("10.1.2.3", t0)
	}
	if got, _ := b.Blocked("10.1.2.3", t0); got {
		t.Error("a trusted proxy's address was blocked")
	}
}

func TestAuthBlockerBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := NewAuthBlocker(100, time.Minute, time.Minute, 0, nil, zap.NewNop(), nil)
	for i := range 3 * maxTrackedIPs {
		b.Failed(fmt.Sprintf("2001:db8::%x", i), t0)
	}
	if n := b.trackedLen(); n > maxTrackedIPs {
		t.Errorf("tracked %d addresses, want at most %d", n, maxTrackedIPs)
	}
	// Once their window has passed, the addresses are forgotten.
	b.Failed("2001:db8:1::1", t0.Add(2*time.Minute))
	for i := range 3 * maxTrackedIPs {
		b.Failed(fmt.Sprintf("2001:db8::%x", i), t0.Add(3*time.Minute))
	}
	if n := b.trackedLen(); n > maxTrackedIPs {
		t.Errorf("after expiry: tracked %d addresses, want at most %d", n, maxTrackedIPs)
	}
}

// TestAuthBlockerIPv6Prefix: IPv6 clients are counted by /64, so an attacker
// cannot rotate through the addresses of the network it is given.
func TestAuthBlockerIPv6Prefix(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := NewAuthBlocker(3, time.Minute, 5*time.Minute, 0, nil, zap.NewNop(), nil)
	for i := range 3 {
		b.Failed(fmt.Sprintf("2001:db8:1:2::%x", i+1), t0)
	}
	tests := []struct {
		name string
		ip   string
		want bool
	}{
		{"a fresh address of the same /64", "2001:db8:1:2:ffff::9", true},
		{"the same /64 with a zone", "2001:db8:1:2::1%eth0", true},
		{"the neighbouring /64", "2001:db8:1:3::1", false},
		{"an IPv4 address", "203.0.113.7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := b.Blocked(tt.ip, t0); got != tt.want {
				t.Errorf("blocked(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}

// TestAuthBlockerFullEvictsIdlest: a tracker filled with other addresses
// still blocks a new one; the idlest entry makes room for it.
func TestAuthBlockerFullEvictsIdlest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := NewAuthBlocker(3, time.Hour, time.Hour, 0, nil, zap.NewNop(), nil)
	// A flood fills the tracker twice over, each address once, a
	// microsecond apart.
	for i := range 2 * maxTrackedIPs {
		b.Failed(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), t0.Add(time.Duration(i)*time.Microsecond))
	}
	now := t0.Add(time.Second)
	for range 3 {
		b.Failed("203.0.113.7", now)
	}
	if got, _ := b.Blocked("203.0.113.7", now); !got {
		t.Fatal("a new address was not blocked once the tracker was full")
	}
	if got, _ := b.Blocked("10.3.13.63", now); got { // the last of the flood
		t.Error("an address with one failure was blocked")
	}
	if n := b.trackedLen(); n > maxTrackedIPs {
		t.Errorf("tracked %d addresses, want at most %d", n, maxTrackedIPs)
	}
}

// TestAuthBlockerIPv6PrefixConfigured: the prefix is a setting; /128 counts
// each address on its own.
func TestAuthBlockerIPv6PrefixConfigured(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		bits int
		ip   string
		want bool
	}{
		{"/128: another address", 128, "2001:db8:1:2::9", false},
		{"/128: the same address", 128, "2001:db8:1:2::1", true},
		{"/48: another /64 of the /48", 48, "2001:db8:1:ffff::1", true},
		{"/48: the next /48", 48, "2001:db8:2::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := NewAuthBlocker(3, time.Minute, time.Minute, tt.bits, nil, zap.NewNop(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				b.Failed("2001:db8:1:2::1", t0)
			}
			if got, _ := b.Blocked(tt.ip, t0); got != tt.want {
				t.Errorf("blocked(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
	if _, err := NewAuthBlocker(3, time.Minute, time.Minute, 129, nil, zap.NewNop(), nil); err == nil {
		t.Error("a /129 prefix was accepted")
	}
}
