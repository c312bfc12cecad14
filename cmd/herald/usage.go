package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagGroup is one heading of herald --help.
type flagGroup struct {
	title string
	flags []string
}

// flagGroups orders herald --help. A flag in no group is listed under
// "Other", so that none is ever hidden.
var flagGroups = []flagGroup{
	{"Server", []string{"addr", "dev", "standalone", "node-id", "allowed-origins", "trusted-proxies", "version"}},
	{"Authentication", []string{
		"session-secret", "session-secret-file", "session-public-key", "session-jwks", "session-algs",
		"session-cookie", "session-issuer", "session-audience", "user-claim", "clock-skew",
		"ws-token-secret", "ws-token-secret-file", "ws-token-ttl",
		"auth-fail-limit", "auth-fail-window", "auth-block-duration", "auth-block-ipv6-prefix",
	}},
	{"Redis", []string{"redis-url", "redis-cluster", "redis-timeout", "redis-health-interval", "channel-prefix", "unsubscribe-grace"}},
	{"Limits", []string{
		"ping-interval", "idle-timeout", "max-message-bytes", "max-sockets-per-user", "max-sockets-per-user-cluster", "max-sockets-per-user-cluster-policy",
		"max-queue-bytes", "write-timeout", "close-timeout", "handshake-timeout", "handshake-concurrency", "handshake-queue", "handshake-queue-wait", "handshake-rate", "handshake-burst",
		"token-rate", "token-burst",
	}},
	{"Drain and shutdown", []string{"drain-window", "drain-concurrency", "shutdown-timeout"}},
	{"Inbox (replay on reconnect)", []string{"inbox", "inbox-max-len", "inbox-retention"}},
	{"Presence", []string{"presence", "presence-interval", "presence-debounce"}},
	{"Rebalancing", []string{"rebalance", "rebalance-margin", "rebalance-rate"}},
	{"Logs and metrics", []string{"log-level", "log-format", "metrics-addr"}},
}

const usageHead = `Usage:
  herald [flags]                  run a replica
  herald token --user ID [flags]  print a session JWT for trying herald by hand (herald token --help)

herald needs to know where its Redis is, or to be told it runs alone:
  --redis-url URL         one Redis, or Sentinel (redis-sentinel://…)
  --redis-cluster NODES   a Redis Cluster
  --standalone            one process, no Redis (a single replica only)
  --dev                   try it on this machine: one process, generated secrets, a demo page

Every flag is also an environment variable, named on its line: --ping-interval is
HERALD_PING_INTERVAL. A flag on the command line wins over the variable. Secrets may be
given as files: HERALD_SESSION_SECRET_FILE, HERALD_WS_TOKEN_SECRET_FILE.
The reference is docs/CONFIGURATION.md.
`

// printUsage writes herald --help: the flags by group, each with its
// environment variable and its default.
func printUsage(out io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(out, usageHead)
	listed := map[string]bool{}
	for _, g := range flagGroups {
		fmt.Fprintf(out, "\n%s:\n", g.title)
		for _, name := range g.flags {
			if f := fs.Lookup(name); f != nil {
				printFlag(out, f)
				listed[name] = true
			}
		}
	}
	var other []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !listed[f.Name] {
			other = append(other, f)
		}
	})
	if len(other) > 0 {
		fmt.Fprint(out, "\nOther:\n")
		for _, f := range other {
			printFlag(out, f)
		}
	}
}

// printFlag writes one flag: its name and value type, its variable, then its
// usage and default.
func printFlag(out io.Writer, f *flag.Flag) {
	typ, usage := flag.UnquoteUsage(f)
	head := "  --" + f.Name
	if typ != "" {
		head += " " + typ
	}
	env := envName(f.Name)
	if f.Name == "version" {
		env = "" // a flag only
	}
	fmt.Fprintf(out, "%-40s %s\n", head, env)
	if def := shownDefault(f); def != "" {
		usage += " (default " + def + ")"
	}
	fmt.Fprintf(out, "      %s\n", strings.ReplaceAll(usage, "\n", "\n      "))
}

// shownDefault is the default worth printing: none for empty strings, false
// booleans and zero numbers, whose meaning the usage text gives.
func shownDefault(f *flag.Flag) string {
	switch f.DefValue {
	case "", "false", "0", "0s":
		return ""
	}
	if typ, _ := flag.UnquoteUsage(f); typ == "string" {
		return fmt.Sprintf("%q", f.DefValue)
	}
	return f.DefValue
}
