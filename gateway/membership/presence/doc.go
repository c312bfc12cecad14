// Package presence is herald's shared membership: how many sockets each
// replica holds, and how many sockets each user holds across the cluster.
//
// Every replica calls Refresh periodically with its socket count; the entry
// expires after Config.TTL unless refreshed, so a crashed replica drops out
// on its own. Refresh returns every live replica's count: the gateway
// rebalances from it, and rebuilds its per-user counts when Refresh reports
// that its entry was gone (it stalled past the TTL, or Redis restarted
// empty). Apply records per-user changes (a socket opened or
// closed on this replica); Count answers a user's cluster-wide socket count
// (countConnections).
//
// Presence events: when a user's cluster-wide count goes from 0 to 1, an
// {"type":"presence","user_id":"42","online":true,"ts":<unix ms>} event is
// published on Config.Channel ("presence" by default, under the prefix).
// When it falls to 0, an offline event follows once it has stayed at 0 for
// Config.Debounce, so a page reload is neither an offline nor an online
// event. A user of a replica that crashed is checked once that replica's
// entry has expired.
//
// Redis keeps everything under "<prefix>presence:": a sorted set of live
// replicas (score: expiry, Redis' clock), a hash of their socket counts, one
// hash per replica of its users' counts (expiring with the replica), a hash
// of the online users, and a sorted set of pending offline checks, which any
// replica's Refresh processes. Refresh also reconciles: it walks the online
// users a slice at a time and takes offline those no live replica counts
// and no check awaits (their replica's counts expired before anyone forgot
// it), and every key expires after an hour without a refresh, so no
// presence state outlives its cluster. Each method is one Lua script, one round
// trip, which touches several of these keys. On a Redis Cluster (a
// *redis.ClusterClient) the names start with "<prefix>presence:{presence}:"
// instead: the hash tag puts every key in one slot, each script declares
// the live replicas' key, so it runs on that slot's master, and that one
// master holds the whole membership. The events are a classic PUBLISH in
// every mode, which a cluster relays to every node. Memory is the
// single-process equivalent for the embedded mode: it delivers events to a
// callback.
//
// Concurrency: every method of Redis and Memory is safe for concurrent use.
// Apply's operations for one user must be given in the order the sockets
// opened and closed; the gateway calls it from one goroutine.
package presence
