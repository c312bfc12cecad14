package admit

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkAuthBlockerMemory fills the blocker with twice as many distinct
// addresses (each in a network of its own) as it tracks and reports the
// heap it then holds per tracked address.
func BenchmarkAuthBlockerMemory(b *testing.B) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, family := range []struct {
		name string
		ip   func(i int) string
	}{
		{"ipv4", func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) }},
		{"ipv6", func(i int) string { return fmt.Sprintf("2001:db8:%x:%x:1:2:3:4", i>>16, i&0xffff) }},
	} {
		b.Run(family.name, func(b *testing.B) {
			ips := make([]string, 2*maxTrackedIPs)
			for i := range ips {
				ips[i] = family.ip(i)
			}
			var perAddr float64
			for range b.N {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				bl, _ := NewAuthBlocker(100, time.Minute, time.Minute, 0, nil, zap.NewNop(), nil)
				for _, ip := range ips {
					bl.Failed(strings.Clone(ip), t0) // as a request would: its own copy
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perAddr = float64(after.HeapAlloc-before.HeapAlloc) / float64(bl.trackedLen())
				runtime.KeepAlive(bl)
			}
			b.ReportMetric(perAddr, "B/address")
		})
	}
}
