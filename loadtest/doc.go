// Package loadtest drives a herald deployment the way browsers do, at scale,
// and reports what it saw and what it cost the servers.
//
// Each simulated tab mints an HS256 session JWT, POSTs /api/ws/token with it
// as the session cookie, opens /ws?token=…, waits for the welcome, answers
// pings, and after a close follows the contract's codes: a fresh token at
// once for 4001/4003, one retry for 4002, after_ms for 1012, a jittered
// exponential backoff for 4009/4029/1013/1001/1006, never for 4000/4008.
//
// Run spreads the sockets over worker processes (Config.Spawn; each holds
// whole users, so that one publisher numbers each user's messages) and plays
// the scenarios connect, fanout, broadcast, churn, slow and replay in that
// order.
// Fan-out payloads carry a send time and a per-user sequence number: a
// socket expects every message published to its user after its welcome, so
// loss, duplicates and reordering are counted per socket, and latency is
// publish→deliver. Server cost comes from the replicas' /metrics, read at
// the start and end of each scenario. replay (replay.go) is a reconnect
// storm against herald's inbox: a storm group's sockets close, events are
// appended to their users' inboxes, and they reconnect at once with since,
// remembered as a browser client does (the inbox_id of the last frame that
// carried one), while fan-out to the other users goes on.
//
// Concurrency: a worker's sockets are read by a few pollers, each an epoll
// instance and one goroutine; a socket's state is guarded by its poller's
// mutex, which the loop holds while it handles ready sockets and which the
// connect path and the scenario commands take to register, close or inspect
// a socket. An idle socket holds no goroutine and no buffer. At most one
// connect attempt (or reconnect timer) exists per socket at a time, and it
// owns the socket's retry counters; the connect path reads a socket's since
// under its poller's mu. replay's fan-out runs on its own goroutine across
// the scenario's steps, owned by the command loop, which stops it. The
// parent talks to each worker over
// one JSON line stream each way; workers run their commands one at a time.
// Lock order: a poller's mu, then the worker's mu. Linux only (epoll), like herald.
package loadtest
