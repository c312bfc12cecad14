// Package loadtest drives a herald deployment the way browsers do, at scale,
// and reports what it saw and what it cost the servers.
//
// Run spreads the sockets over worker processes (Config.Spawn; each holds
// whole users, so that one publisher numbers each user's messages) and plays
// the scenarios connect, fanout, broadcast, churn, slow and replay (the
// reconnect storm) in that order. The parent talks to each worker over one
// JSON line stream each way (client.Command, client.Event); workers run
// their commands one at a time (package scenario), on their sockets
// (package client). Server cost comes from the replicas' /metrics, read at
// the start and end of each scenario (and of each of the storm's steps).
// The report (Report) is written as text and JSON; its names, including the
// scenario called replay, are the command line's and stay as they are.
//
// Concurrency: the parent's runner is driven by one goroutine (Run); each
// worker end has a reader goroutine that hands results over channels, and
// its progress is guarded by its mu. Linux only (epoll), like herald.
package loadtest
