// Package membership keeps a replica in the cluster's shared membership:
// it refreshes the replica's entry (its socket count) in the presence store
// every Interval, sheds sockets toward the others while the replica holds
// more than its share (Rebalance), and feeds the store the per-user socket
// counts that presence events and the cluster-wide cap read (UserPresence).
// The store itself, Redis or in-process, is package presence below it.
//
// It sees the gateway only through small interfaces: Sockets (the count),
// Shed (the sockets it tells to reconnect elsewhere), UserCounts (the
// registry's per-user counts, to rebuild the store's after it lost them)
// and Broker (whether the replica takes sockets).
//
// Concurrency: Run's goroutine owns the rebalancing state; RunUsers'
// goroutine applies the per-user changes that any goroutine queues
// (Queue), in order, under the counts' mutex. While rebuilding, that mutex
// is held across the call to UserCounts, which takes the registry's shard
// locks: the counts' mutex comes before the registry's (see docs/LOCKS.md
// for the process-wide order). Both loops stop when their stop channel is
// closed.
package membership
