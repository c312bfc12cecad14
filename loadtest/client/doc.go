// Package client is the load tester's socket core: the simulated browser
// tabs of one worker (a Fleet), read without a goroutine or a buffer per
// idle socket.
//
// Each tab mints an HS256 session JWT, POSTs /api/ws/token with it as the
// session cookie, opens /ws?token=…, waits for the welcome, answers pings,
// and after a close follows the contract's codes: a fresh token at once for
// 4001/4003, one retry for 4002, after_ms for 1012, a jittered exponential
// backoff for 4009/4029/1013/1001/1006, never for 4000/4008. Frames go
// through internal/wsframe. Fan-out payloads carry a send time and a
// per-user sequence number: a socket expects every message published to
// its user after its welcome, so loss, duplicates and reordering are
// counted per socket (tally), and latency is publish→deliver. In the storm,
// a storm-group socket keeps a record of the inbox events it receives
// (stormTrack) and reconnects with since, remembered as a browser client
// does (the inbox_id of the last frame that carried one).
//
// Concurrency: a fleet's sockets are read by a few pollers, each an epoll
// instance and one goroutine; a socket's state is guarded by its poller's
// mutex, which the loop holds while it handles ready sockets and which the
// connect path and the scenarios (Fleet.Each, the Locked methods) take to
// register, close or inspect a socket. An idle socket holds no goroutine
// and no buffer. At most one connect attempt (or reconnect timer) exists
// per socket at a time, and it owns the socket's retry counters; the
// connect path reads a socket's since under its poller's mu. Lock order: a
// poller's mu, then the fleet's mu. Linux only (epoll).
package client
