// Command loadtest drives a herald deployment like browsers do and reports
// what it saw and what it cost the servers. See docs/LOADTEST.md
// (the README links it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/herald-gw/herald/loadtest"
	"github.com/herald-gw/herald/loadtest/floor"
	"github.com/herald-gw/herald/loadtest/threshold"
)

// workerEnv marks a process started as a worker by its parent.
const workerEnv = "HERALD_LOADTEST_WORKER"

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func main() {
	if os.Getenv(workerEnv) == "1" {
		if err := loadtest.ServeWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest worker:", err)
			os.Exit(2)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		os.Exit(runFloor(os.Args[2:], os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr, os.Stdout))
}

// runFloor serves the floor (package loadtest/floor) until SIGINT or
// SIGTERM: `loadtest floor --addr 127.0.0.1:8090 --redis redis://…`.
func runFloor(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest floor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	redisURL := fs.String("redis", "", "Redis to subscribe to (required)")
	prefix := fs.String("channel-prefix", "", "channel prefix, as herald's")
	cookie := fs.String("session-cookie", "access_token", "session cookie name")
	secret := fs.String("session-secret", os.Getenv("HERALD_SESSION_SECRET"), "HS256 secret of session JWTs: the token POST checks their signature as herald's does (default: HERALD_SESSION_SECRET; empty: no check)")
	claim := fs.String("user-claim", "sub", "claim holding the user id")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	srv, err := floor.New(ctx, floor.Config{Addr: *addr, Redis: *redisURL, ChannelPrefix: *prefix, SessionCookie: *cookie, UserClaim: *claim, SessionSecret: secretBytes(*secret)})
	if err != nil {
		fmt.Fprintln(stderr, "loadtest floor:", err)
		return 2
	}
	fmt.Fprintf(stderr, "loadtest floor: serving on %s (not herald: a yardstick for the load tester)\n", srv.Addr())
	<-ctx.Done()
	srv.Close()
	return 0
}

// run returns the exit status: 0 when every correctness check and
// threshold passed, 1 when a correctness check failed, 2 when the run could
// not be made, 3 when only thresholds were crossed.
func run(args []string, stderr, stdout io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var targets, metrics, thresholds listFlag
	fs.Var(&targets, "target", "herald base URL http://host:port, a replica or a load balancer (repeatable; socket i goes to target i mod n)")
	fs.Var(&metrics, "metrics", "a replica's /metrics URL, read for server cost (repeatable; default: each target's /metrics)")
	sockets := fs.Int("sockets", 1000, "sockets to open")
	users := fs.Int("users", 0, "distinct users holding them (default: one per socket)")
	secret := fs.String("session-secret", "", "HS256 secret of session JWTs (prefer --session-secret-file or HERALD_SESSION_SECRET)")
	secretFile := fs.String("session-secret-file", "", "file holding the session secret (default: HERALD_SESSION_SECRET_FILE)")
	claim := fs.String("user-claim", "sub", "claim holding the user id, as herald's --user-claim")
	cookie := fs.String("session-cookie", "access_token", "session cookie name, as herald's --session-cookie")
	origin := fs.String("origin", "", "Origin header of the token POST and the upgrade")
	userPrefix := fs.String("user-prefix", "lt-", "user ids are <prefix><n>")
	channelPrefix := fs.String("channel-prefix", "", "herald's --channel-prefix")
	redisURL := fs.String("redis", "", "Redis herald uses (redis://host:port/0 or host:port), for PUBLISH; needed by every scenario but connect")
	scenarios := fs.String("scenario", "", "comma-separated scenarios among connect,fanout,broadcast,churn,slow,replay (default: all, or connect without --redis)")
	duration := fs.Duration("duration", 10*time.Second, "how long fanout, churn and slow each publish; replay's baseline before the storm lasts half of it")
	deadline := fs.Duration("deadline", 0, "hard cap of the whole run (default: connect timeout + 2×duration per timed scenario + 30s)")
	connectTimeout := fs.Duration("connect-timeout", 60*time.Second, "bound on the connect scenario")
	rate := fs.Float64("rate", 0, "fan-out PUBLISHes per second over all users (0: flat out)")
	payload := fs.Int("payload-bytes", 100, "fan-out payload size")
	churn := fs.Float64("churn-share", 0.05, "share of sockets that close and reconnect every second in churn")
	slow := fs.Float64("slow-share", 0.01, "share of sockets that stop reading in slow")
	flood := fs.Float64("slow-flood", 2<<20, "bytes per second published to each slow socket's user while it does not read (0: none)")
	replayUsers := fs.Int("replay-users", 0, "replay's storm group: the last N users (default: half of --users); the others get live fan-out")
	replayShare := fs.Float64("replay-share", 1, "share of the storm group whose sockets all leave and reconnect at once with since (the rest stay and get the events live)")
	replayEvents := fs.Int("replay-events", 10, "inbox events appended to each storm user while away")
	concurrency := fs.Int("concurrency", 256, "handshakes in flight over all workers (a closed loop)")
	arrival := fs.String("arrival-rate", "", "open loop for connect and replay's storm: sockets opened a second (N or N/s), whether or not earlier ones are welcomed; replaces --concurrency")
	procs := fs.Int("procs", 0, "worker processes (default: one per 18,000 sockets)")
	srcIPs := fs.String("src-ips", "", "source addresses for client sockets: N (127.0.0.2 … 127.0.0.N+1) or a comma-separated list (default: enough loopback addresses for the sockets when every target is on loopback)")
	drain := fs.Duration("drain-timeout", 5*time.Second, "wait for messages in flight after publishing stops")
	jsonOut := fs.String("json", "", "write the JSON report to this file")
	htmlOut := fs.String("html", "", "write the report as one self-contained HTML page with charts to this file")
	fs.Var(&thresholds, "threshold", "a pass/fail criterion on a figure of the JSON report, e.g. 'delivery.p99_ms<10' or 'sockets.failed==0' (repeatable; ops < <= > >= == !=); a crossed one makes the exit status 3")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadtest: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	arrivalRate, err := parseArrivalRate(*arrival)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	checks, err := threshold.ParseAll(thresholds)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	sec, err := sessionSecret(*secret, *secretFile)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	cfg := loadtest.Config{
		Targets: targets, Sockets: *sockets, Users: *users, SessionSecret: sec,
		UserClaim: *claim, SessionCookie: *cookie, Origin: *origin, UserPrefix: *userPrefix,
		ChannelPrefix: *channelPrefix, Redis: *redisURL, Metrics: metrics,
		Duration: *duration, Deadline: *deadline, ConnectTimeout: *connectTimeout, Rate: *rate,
		PayloadBytes: *payload, ChurnShare: *churn, SlowShare: *slow, SlowFlood: *flood,
		ReplayUsers: *replayUsers, ReplayShare: *replayShare, ReplayEvents: *replayEvents,
		Concurrency: *concurrency, Procs: *procs, DrainTimeout: *drain,
		ArrivalRate: arrivalRate,
		Progress:    stderr, ProgressTTY: isTTY(stderr), Timeline: *htmlOut != "",
	}
	if *flood == 0 {
		cfg.SlowFlood = -1
	}
	if *scenarios != "" {
		cfg.Scenarios = strings.Split(*scenarios, ",")
	}
	if cfg.SrcIPs, err = sourceAddrs(*srcIPs, targets, *sockets); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "loadtest: cannot find my own binary to start workers:", err)
		return 2
	}
	cfg.Spawn = loadtest.ExecWorker(self, nil, []string{workerEnv + "=1"})
	cfg.Log = zap.NewNop() // warnings land in the report

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	rep, err := loadtest.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	}
	results, cerr := threshold.Check(checks, rep)
	if cerr != nil {
		fmt.Fprintln(stderr, "loadtest:", cerr)
		return 2
	}
	rep.Thresholds = results
	rep.WriteText(stdout)
	if *jsonOut != "" {
		if werr := rep.WriteJSON(*jsonOut); werr != nil {
			fmt.Fprintln(stderr, "loadtest:", werr)
			return 2
		}
	}
	if *htmlOut != "" {
		if werr := writeHTML(*htmlOut, rep, results, args); werr != nil {
			fmt.Fprintln(stderr, "loadtest:", werr)
			return 2
		}
	}
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "loadtest:", err)
		return 2
	case !rep.OK:
		return 1
	case threshold.Failed(results):
		fmt.Fprintln(stderr, "loadtest: thresholds crossed")
		return 3
	}
	return 0
}

// sessionSecret takes the secret from the flag, the file, or herald's own
// environment variables, in that order.
func sessionSecret(flagValue, file string) ([]byte, error) {
	if flagValue != "" {
		return []byte(flagValue), nil
	}
	if file == "" {
		file = os.Getenv("HERALD_SESSION_SECRET_FILE")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if v := os.Getenv("HERALD_SESSION_SECRET"); v != "" {
		return []byte(v), nil
	}
	return nil, errors.New("a session secret is needed: --session-secret-file, --session-secret or HERALD_SESSION_SECRET")
}

// sourceAddrs parses --src-ips; by default it picks one loopback address
// per 20,000 sockets per target when every target is on loopback (a source
// address has about 28,000 ephemeral ports per destination).
func sourceAddrs(v string, targets []string, sockets int) ([]string, error) {
	if v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			if n < 0 || n > 250 {
				return nil, fmt.Errorf("--src-ips %d: want 0…250", n)
			}
			return loadtest.SrcRange(n), nil
		}
		ips := strings.Split(v, ",")
		for _, ip := range ips {
			if net.ParseIP(ip) == nil {
				return nil, fmt.Errorf("--src-ips: %q is not an IP address", ip)
			}
		}
		return ips, nil
	}
	if len(targets) == 0 {
		return nil, nil
	}
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil {
			return nil, nil
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() {
			return nil, nil
		}
	}
	per := (sockets + len(targets) - 1) / len(targets)
	if n := (per + 19999) / 20000; n > 1 {
		return loadtest.SrcRange(n), nil
	}
	return nil, nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseArrivalRate reads --arrival-rate: "" (the closed loop), N or N/s.
func parseArrivalRate(v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseFloat(strings.TrimSuffix(v, "/s"), 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--arrival-rate %q: want a positive number of sockets a second, such as 5000/s", v)
	}
	return n, nil
}

// secretBytes is s as a secret, nil when empty.
func secretBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
