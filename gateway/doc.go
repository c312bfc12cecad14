// Package gateway is herald's HTTP surface and socket registry: the token
// endpoint, the WebSocket handshake, the per-user registry, fan-out of
// broker messages to sockets, and graceful shutdown. The sockets themselves,
// after the upgrade, are served by the epoll core in gateway/wscore.
//
// # Files
//
//   - server.go: Server, New, Serve; config.go: Config and its defaults.
//   - listen.go: Serve's demux: it accepts the connections and reads each
//     one's request line; an upgrade of /ws goes to rawws.go, everything
//     else to net/http on the same listener, the bytes read replayed.
//   - rawws.go: GET /ws without net/http: gobwas' Upgrader parses the
//     request, which waits for admission (admission.go, limit.go) holding
//     no goroutine; workers.go runs the admitted ones.
//   - http.go: the HTTP endpoints; their admission checks (origins, client
//     IP, token bucket, failed-auth blocking) are in gateway/admit.
//   - handshake.go: GET /ws, from the request to the welcome frame: the
//     handshake type, its steps and its one exit; handleWS, its net/http
//     path, serves it when Serve is given a handler wrapping Handler().
//   - conn.go: the gateway's view of a socket, its state (new, registered,
//     welcomed, ended; counted in presence; holding a drain slot) with the
//     one transition function, and the core's callbacks.
//   - registry.go: user → sockets and socket id → socket, in shards.
//   - api.go: the in-process API (SendToUser, Broadcast, …).
//   - delivery.go: the broker's handler: checks, frames and queues messages.
//   - shutdown.go: draining; listener.go: accept with back-off.
//   - memory.go: returning memory to the system after a burst of handshakes.
//
// # Messages
//
// Each message from the broker is checked once: a payload larger than half
// of MaxQueueBytes (the largest message herald relays) or not valid UTF-8
// is dropped and counted in herald_messages_dropped_total{reason}; it never
// costs a socket. A valid one is framed once and the same bytes are queued
// to every target socket; the registry's shard locks are held only while
// copying the target list.
//
// # Inbox catch-up
//
// With Config.Inbox, the handshake reads the user's inbox after the broker
// confirmed the subscription and queues the welcome, the catch-up (for a
// socket opened with since) and its marker before the socket goes live.
// Meanwhile the socket's gate (Conn.gate, inbox.go) holds what fan-out
// gives the socket; fan-out loads that pointer once per target socket and
// asks the gate only when it is set. A gate's mu is held while frames are queued to the socket; the
// lock order is in docs/LOCKS.md.
//
// # Membership, rebalancing and presence
//
// With Config.Presence, package gateway/membership refreshes this
// replica's entry every PresenceInterval and, with Config.Rebalance, sheds
// sockets while the replica holds more than (1+RebalanceMargin) × the
// cluster average, through the same reconnect-then-1012 path as a shutdown
// (presence.go: members.Shed). With UserPresence, it applies the per-user
// +1/-1 that handshakes and teardowns queue, in order, in batches; only the
// cluster-wide cap waits for Presence inside a handshake (presenceAdmit).
// Both loops stop with the core.
//
// # Concurrency
//
// Server's exported methods are safe for concurrent use. A connection is
// read by a goroutine of its own (listen.go) until its request is whole;
// an upgrade then waits for admission in admission's queue, owned by
// admission.mu, with no goroutine, and runs on a worker once admitted (or
// in its net/http goroutine on the net/http path) until wscore's
// Conn.Start; from
// then on the core owns the socket and reports its end through OnClose,
// which unregisters it. Subscribe and Unsubscribe are called under a
// registry user shard's lock; no registry lock is held while calling into
// a socket. The lock order of the whole process, the core's included, is
// in docs/LOCKS.md.
//
// The failed-authentication blocker (admit.AuthBlocker) keeps its per-IP
// records in shards, each under its own mutex, taken alone (a leaf lock:
// nothing is called while it is held but the logger and a metric).
package gateway
