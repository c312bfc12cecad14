package loadtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Scenario names, in the order a run plays them.
var Scenarios = []string{"connect", "fanout", "broadcast", "churn", "slow", "replay"}

// Config is one load-test run. The zero value of each field is documented;
// New fills the defaults and refuses what cannot work.
type Config struct {
	// Targets are herald base URLs (http://host:port), replicas or a load
	// balancer. Socket i goes to Targets[i % len]. Required.
	Targets []string
	// Sockets is how many sockets to open. Required.
	Sockets int
	// Users is how many distinct users hold them; zero means one user per
	// socket. Sockets per user follow (the first users get one more when
	// it does not divide).
	Users int
	// SessionSecret signs the HS256 session JWTs. Required, ≥ 32 bytes.
	SessionSecret []byte
	// UserClaim is the claim holding the user id; zero means "sub".
	UserClaim string
	// SessionCookie is the session cookie's name; zero means "access_token".
	SessionCookie string
	// Origin, when set, is sent as the Origin header of both requests.
	Origin string
	// UserPrefix starts every user id; zero means "lt-".
	UserPrefix string
	// ChannelPrefix is herald's --channel-prefix; zero means none.
	ChannelPrefix string
	// Redis is where fan-out and broadcast messages are PUBLISHed
	// (redis://… or host:port). Zero means no fan-out, broadcast, churn or
	// slow scenario can run.
	Redis string
	// Metrics are /metrics URLs of the replicas, read for server cost; zero
	// means each target's /metrics.
	Metrics []string
	// Scenarios to run, from Scenarios; zero means all that can run (those
	// needing Redis are left out without it, replay with a single user).
	// connect always runs first.
	Scenarios []string
	// Duration is how long each timed scenario (fanout, churn, slow)
	// publishes; zero means 10 s.
	Duration time.Duration
	// Deadline is the hard cap of the whole run: past it the workers are
	// stopped and the report says so. Zero means the connect timeout plus
	// 2 × Duration per timed scenario plus 30 s.
	Deadline time.Duration
	// ConnectTimeout bounds the connect scenario; zero means 60 s.
	ConnectTimeout time.Duration
	// Rate is fan-out PUBLISHes per second over all users; zero means as
	// fast as Redis and herald take them.
	Rate float64
	// PayloadBytes is the size of a fan-out payload; zero means 100.
	PayloadBytes int
	// ChurnShare is the share of sockets that reconnect every second in
	// churn; zero means 0.05.
	ChurnShare float64
	// SlowShare is the share of sockets that stop reading in slow; zero
	// means 0.01.
	SlowShare float64
	// SlowFlood is bytes per second published to each slow socket's user
	// while it does not read, so that herald's queue cap is reached within
	// the scenario; zero means 2 MiB/s, negative means none.
	// A default Linux lets one TCP socket buffer up to 4 MiB
	// (net.ipv4.tcp_wmem), which herald cannot see, before its own queue
	// cap (256 KiB) is reached: the second half of slow must last long
	// enough for that to arrive.
	SlowFlood float64
	// ReplayUsers is the storm group of replay: the last ReplayUsers of the
	// Users, with all their sockets; the others are the live users that
	// fan-out reaches during replay. Zero means half of the users (rounded
	// down); it must leave at least one live user.
	ReplayUsers int
	// ReplayShare is the share of the storm group whose sockets all close,
	// get ReplayEvents inbox events each while away, and reconnect at once
	// with since; the rest of the group stays connected and gets the same
	// events live. Zero means 1: the whole group storms.
	ReplayShare float64
	// ReplayEvents is how many events are appended to each storm user's
	// inbox while its sockets are away (K); zero means 10. herald replays
	// at most its --inbox-max-len (100) per reconnect and answers resync
	// beyond it.
	ReplayEvents int
	// Concurrency is handshakes in flight over all workers; zero means 256.
	Concurrency int
	// ArrivalRate, when positive, replaces Concurrency for connect and for
	// replay's storm with an open loop: sockets are opened at ArrivalRate a
	// second over all workers, whether or not earlier ones are welcomed, as
	// browsers coming back after an outage do. Zero means the closed loop.
	ArrivalRate float64
	// Procs is the number of worker processes; zero means one per 18,000
	// sockets (a process may hold 20,000 descriptors here), counted apart
	// for replay's live users and its storm group, which are held by
	// different processes whenever there are two or more (see workerOf).
	// With the replay scenario each group gets the whole Concurrency.
	Procs int
	// liveSockets and liveProcs are set by fill: with the replay scenario,
	// the sockets of its live users, and the workers that hold them alone
	// (zero when users are dealt round-robin; see runner.workerOf).
	liveSockets, liveProcs int
	// SrcIPs are local addresses to bind client sockets to, spread evenly;
	// zero means the kernel's choice.
	SrcIPs []string
	// DrainTimeout is how long a scenario waits for messages in flight
	// after publishing stops; zero means 5 s.
	DrainTimeout time.Duration
	// Spawn starts one worker; zero means in this process (for tests and
	// small runs). cmd/loadtest starts its own binary.
	Spawn func(id int) (Worker, error)
	// Progress receives the live progress; zero means none.
	Progress io.Writer
	// ProgressTTY makes Progress one updating line instead of plain lines.
	ProgressTTY bool
	// Timeline records the run about once a second (sockets, rates,
	// latency percentiles, each --metrics server's CPU and memory) into
	// Report.Timeline, for the HTML report; false records nothing.
	Timeline bool
	// Log receives warnings (unreadable /metrics…); zero means none.
	Log *zap.Logger
}

const perProcSockets = 18000

func (c *Config) fill() error {
	if len(c.Targets) == 0 {
		return errors.New("loadtest: at least one target is needed")
	}
	for i, t := range c.Targets {
		t = strings.TrimRight(t, "/")
		u, err := url.Parse(t)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("loadtest: target %q is not an http(s)://host:port URL", t)
		}
		c.Targets[i] = t
	}
	if c.Sockets <= 0 {
		return errors.New("loadtest: sockets must be positive")
	}
	if c.Users <= 0 {
		c.Users = c.Sockets
	}
	if c.Users > c.Sockets {
		return fmt.Errorf("loadtest: %d users cannot hold %d sockets", c.Users, c.Sockets)
	}
	if len(c.SessionSecret) < 32 {
		return errors.New("loadtest: the session secret must be at least 32 bytes (HS256)")
	}
	if c.UserClaim == "" {
		c.UserClaim = "sub"
	}
	if c.SessionCookie == "" {
		c.SessionCookie = "access_token"
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "lt-"
	}
	if len(c.Metrics) == 0 {
		for _, t := range c.Targets {
			c.Metrics = append(c.Metrics, t+"/metrics")
		}
	}
	chosen := len(c.Scenarios) > 0
	if !chosen {
		c.Scenarios = []string{"connect"}
		if c.Redis != "" {
			c.Scenarios = Scenarios
		}
	}
	seen := map[string]bool{}
	for _, s := range c.Scenarios {
		known := false
		for _, k := range Scenarios {
			known = known || k == s
		}
		if !known {
			return fmt.Errorf("loadtest: unknown scenario %q (known: %s)", s, strings.Join(Scenarios, ","))
		}
		if s != "connect" && c.Redis == "" {
			return fmt.Errorf("loadtest: scenario %s publishes to Redis: --redis is needed", s)
		}
		seen[s] = true
	}
	if seen["replay"] && !chosen && c.Users < 2 {
		delete(seen, "replay") // all scenarios, but one user cannot storm beside live ones
	}
	c.Scenarios = nil
	for _, s := range Scenarios {
		if seen[s] || s == "connect" {
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 60 * time.Second
	}
	if c.Deadline <= 0 {
		c.Deadline = c.ConnectTimeout + 30*time.Second
		for _, s := range c.Scenarios {
			if s == "fanout" || s == "churn" || s == "slow" {
				c.Deadline += 2 * c.Duration
			}
			if s == "replay" {
				// The baseline, the storm (bounded like connect) and the appends.
				c.Deadline += c.Duration + c.ConnectTimeout + 30*time.Second
			}
		}
	}
	if c.PayloadBytes <= 0 {
		c.PayloadBytes = 100
	}
	if c.ChurnShare <= 0 {
		c.ChurnShare = 0.05
	}
	if c.SlowShare <= 0 {
		c.SlowShare = 0.01
	}
	if c.SlowFlood == 0 {
		c.SlowFlood = 2 << 20
	}
	if seen["replay"] {
		if c.Users < 2 {
			return errors.New("loadtest: replay needs at least 2 users (a storm group and live users)")
		}
		if c.ReplayUsers == 0 {
			c.ReplayUsers = c.Users / 2
		}
		if c.ReplayUsers < 0 || c.ReplayUsers >= c.Users {
			return fmt.Errorf("loadtest: replay users %d: want 1…%d (at least one live user must remain)", c.ReplayUsers, c.Users-1)
		}
		if c.ReplayShare == 0 {
			c.ReplayShare = 1
		}
		if c.ReplayShare < 0 || c.ReplayShare > 1 {
			return fmt.Errorf("loadtest: replay share %v: want a share in (0, 1]", c.ReplayShare)
		}
		if c.ReplayEvents == 0 {
			c.ReplayEvents = 10
		}
		if c.ReplayEvents < 0 {
			return fmt.Errorf("loadtest: replay events %d: must be positive", c.ReplayEvents)
		}
	}
	if c.ArrivalRate < 0 {
		return errors.New("loadtest: the arrival rate must not be negative")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if seen["replay"] {
		c.liveSockets = c.stormSockets(false)
	}
	if c.Procs <= 0 {
		c.Procs = (c.Sockets + perProcSockets - 1) / perProcSockets
		if seen["replay"] {
			// The live users and the storm group get processes of their own.
			c.Procs = (c.liveSockets+perProcSockets-1)/perProcSockets + (c.Sockets-c.liveSockets+perProcSockets-1)/perProcSockets
		}
	}
	if c.Procs > c.Sockets {
		c.Procs = c.Sockets
	}
	if seen["replay"] && c.Procs >= 2 {
		// As large a share of the workers as the live sockets' share,
		// rounded up, and at least one for each group.
		n := (c.Procs*c.liveSockets + c.Sockets - 1) / c.Sockets
		c.liveProcs = min(max(n, 1), c.Procs-1)
	}
	for _, ip := range c.SrcIPs {
		if net.ParseIP(ip) == nil {
			return fmt.Errorf("loadtest: source address %q is not an IP address", ip)
		}
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	return nil
}

// SrcRange returns n loopback addresses from 127.0.0.2 on.
func SrcRange(n int) []string {
	var ips []string
	for i := range n {
		k := i + 2
		ips = append(ips, fmt.Sprintf("127.%d.%d.%d", (k>>16)&0xff, (k>>8)&0xff, k&0xff))
	}
	return ips
}

// stormSockets counts the sockets of replay's storm group (storm) or of
// its live users: socket i belongs to user i % Users, and the last
// ReplayUsers users are the storm group.
func (c *Config) stormSockets(storm bool) int {
	from := c.Users - c.ReplayUsers
	n := 0
	for i := range c.Sockets {
		if (i%c.Users >= from) == storm {
			n++
		}
	}
	return n
}
