package loadtest

import (
	"fmt"
	"strings"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// merge adds up the workers' results for one scenario.
func merge(name string, results []*client.Result, elapsed time.Duration) ScenarioReport {
	sum := &client.Result{FailedBy: map[string]uint64{}, Closed: map[string]uint64{}}
	var hs, lat, base, bc client.Histogram
	for _, r := range results {
		sum.Up += r.Up
		sum.Failed += r.Failed
		sum.LastWelcome = max(sum.LastWelcome, r.LastWelcome)
		for k, v := range r.FailedBy {
			sum.FailedBy[k] += v
		}
		for k, v := range r.Closed {
			sum.Closed[k] += v
		}
		sum.Handshakes += r.Handshakes
		sum.Published += r.Published
		sum.PublishErrors += r.PublishErrors
		sum.Sent += r.Sent
		sum.Delivered += r.Delivered
		sum.Lost += r.Lost
		sum.Excused += r.Excused
		sum.Resyncs += r.Resyncs
		sum.Dups += r.Dups
		sum.OutOfOrder += r.OutOfOrder
		sum.SocketsLost += r.SocketsLost
		sum.SocketsDup += r.SocketsDup
		sum.SocketsOOO += r.SocketsOOO
		sum.MaxLost = max(sum.MaxLost, r.MaxLost)
		sum.BroadcastGot += r.BroadcastGot
		sum.BroadcastMissed += r.BroadcastMissed
		sum.Slow += r.Slow
		sum.Flooded += r.Flooded
		sum.Shed += r.Shed
		sum.StillSlow += r.StillSlow
		sum.Reconnects += r.Reconnects
		sum.ClientCPU += r.ClientCPU
		sum.ClientRSSKiB += r.ClientRSSKiB
		r.Handshake.MergeInto(&hs)
		r.Latency.MergeInto(&lat)
		r.Baseline.MergeInto(&base)
		r.Broadcast.MergeInto(&bc)
	}
	sr := ScenarioReport{
		Name: name, Elapsed: elapsed.Round(time.Millisecond).String(), Up: sum.Up,
		FailedBy: sum.FailedBy, Closed: sum.Closed, Reconnects: sum.Reconnects,
		Client: &ClientCost{CPUSeconds: sum.ClientCPU.Seconds(), RSSKiB: sum.ClientRSSKiB},
	}
	if s := elapsed.Seconds(); s > 0 {
		sr.Client.Cores = sr.Client.CPUSeconds / s
	}
	if len(sr.Closed) == 0 {
		sr.Closed = nil
	}
	if name == "connect" || name == "churn" || name == "replay" {
		l := latency(&hs, elapsed)
		sr.Handshake = &l
	}
	if name == "connect" {
		if sum.LastWelcome > 0 {
			sr.LastWelcome = sum.LastWelcome.Round(time.Millisecond).String()
		}
		// Sockets still down at the end of connect are the failed ones.
		if sum.Failed > 0 {
			sr.FailedBy["down_at_end"] = uint64(sum.Failed)
		}
	}
	if name == "fanout" || name == "churn" || name == "slow" || name == "replay" {
		l := latency(&lat, elapsed)
		sr.Delivery = &DeliveryReport{
			Published: sum.Published, PublishErrors: sum.PublishErrors, Sent: sum.Sent, Delivered: sum.Delivered,
			Lost: sum.Lost, LostResync: sum.Excused, Resyncs: sum.Resyncs, Duplicates: sum.Dups, OutOfOrder: sum.OutOfOrder,
			SocketsLost: sum.SocketsLost, SocketsDup: sum.SocketsDup, SocketsOOO: sum.SocketsOOO, MaxLost: sum.MaxLost,
			PerS: float64(sum.Delivered) / elapsed.Seconds(), P50: l.P50, P99: l.P99, P999: l.P999, Max: l.Max,
		}
	}
	if name == "broadcast" {
		sr.Broadcast = &BroadcastReport{
			Sockets: sum.BroadcastGot, Missed: sum.BroadcastMissed,
			FirstMs: bc.Quantile(0), MedianMs: bc.Quantile(0.5), LastMs: bc.Quantile(1),
		}
		if bc.Count() > 0 {
			for pct := 0; pct <= 100; pct++ {
				q := float64(pct) / 100
				sr.Broadcast.Arrival = append(sr.Broadcast.Arrival, ArrivalPoint{Share: q, Ms: bc.Quantile(q)})
			}
		}
	}
	if name == "slow" {
		s := &SlowReport{
			Slow: sum.Slow, Flooded: sum.Flooded, Shed: sum.Shed, StillSlow: sum.StillSlow,
			BaselineP99: base.Quantile(0.99), OthersP99: lat.Quantile(0.99),
		}
		if s.BaselineP99 > 0 {
			s.P99Ratio = s.OthersP99 / s.BaselineP99
		}
		sr.Slow = s
	}
	if len(sr.FailedBy) == 0 {
		sr.FailedBy = nil
	}
	return sr
}

// finish fills the headline blocks and the verdict from the scenarios.
func finish(rep *Report) {
	rep.Failures = []string{}
	rep.Sockets.FailedBy = map[string]uint64{}
	for _, s := range rep.Scenarios {
		switch s.Name {
		case "connect":
			rep.Sockets.OK = s.Up
			for k, v := range s.FailedBy {
				if k != "down_at_end" {
					rep.Sockets.FailedBy[k] += v
				}
			}
			rep.Sockets.Failed = int64(s.FailedBy["down_at_end"])
			if s.Handshake != nil {
				rep.Handshake = *s.Handshake
			}
			if c := s.Server; c != nil {
				rep.Server.RSSKiBPerSocket = c.RSSKiBPerSock
				rep.Server.CPUUsPerHandshake = c.CPUUsPerHS
				if c.Error != "" {
					rep.Server.Error = c.Error
				}
			}
			if rep.Sockets.Failed > 0 {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%d sockets were not welcomed (failed attempts: %s)", rep.Sockets.Failed, mapText(rep.Sockets.FailedBy)))
			}
		case "fanout":
			d := *s.Delivery
			rep.Delivery = &d
			if c := s.Server; c != nil {
				rep.Server.CPUUsPerDelivery = c.CPUUsPerMsg
			}
		case "broadcast":
			b := *s.Broadcast
			rep.Broadcast = &b
			if b.Missed > 0 {
				rep.Failures = append(rep.Failures, fmt.Sprintf("broadcast: %d connected sockets did not receive it within 10 s", b.Missed))
			}
		case "replay":
			if s.Storm != nil {
				rp := *s.Storm
				rep.Storm = &rp
				rep.Failures = append(rep.Failures, rp.failures()...)
				if rp.Skipped > 0 {
					rep.Warnings = append(rep.Warnings, fmt.Sprintf("replay: %d storm-group sockets were not up when the storm users left, and took no part", rp.Skipped))
				}
			}
		}
		if d := s.Delivery; d != nil {
			if d.Lost > 0 {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %d messages lost while their socket was connected (%d sockets)", s.Name, d.Lost, d.SocketsLost))
			}
			if d.Duplicates > 0 {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %d messages delivered twice (%d sockets)", s.Name, d.Duplicates, d.SocketsDup))
			}
			if d.PublishErrors > 0 {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %d PUBLISHes failed", s.Name, d.PublishErrors))
			}
			if d.Resyncs > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: herald sent %d resync frames (it lost Redis); %d deliveries were missing before them", s.Name, d.Resyncs, d.LostResync))
			}
			if d.OutOfOrder > 0 {
				rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %d messages arrived out of order (%d sockets)", s.Name, d.OutOfOrder, d.SocketsOOO))
			}
			if d.Sent == 0 && d.Published > 0 {
				rep.Warnings = append(rep.Warnings, s.Name+": no delivery was due (no socket up?)")
			}
		}
		if s.Server != nil && s.Server.Error != "" {
			rep.Warnings = appendOnce(rep.Warnings, "server cost unknown: "+s.Server.Error)
		}
	}
	rep.OK = len(rep.Failures) == 0
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s || strings.HasPrefix(x, "server cost unknown") && strings.HasPrefix(s, "server cost unknown") {
			return list
		}
	}
	return append(list, s)
}
