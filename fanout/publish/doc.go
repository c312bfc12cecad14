// Package publish is what a backend service written in Go imports to reach
// herald's sockets: Publisher, the names of the Redis channels and keys of
// the contract (Channels, Target), the control command (Control), and the
// inbox append (AppendScript, the file inbox_append.lua, which Publisher
// runs for user events). It needs only the service's go-redis client and
// never starts a goroutine.
//
// The names are defined here once: herald's brokers (package fanout and
// below) and its inbox stores import them, never the other way round, so a
// service that imports publish pulls in no broker.
//
// Channels, under a configurable prefix (empty by default):
// "<prefix>user:<user_id>", "<prefix>socket:<socket_id>",
// "<prefix>broadcast", "<prefix>broadcast:except:<user_id>" and
// "<prefix>herald:control", whose payload is a Control as JSON; in a Redis
// Cluster the user and socket ids are hash-tagged ("user:{42}"), see
// NewShardedChannels. A user's inbox is the stream "<prefix>inbox:<user_id>"
// ("inbox:{<user_id>}" in a cluster). Payloads are delivered verbatim,
// except that a user event carries its inbox id first (InboxFrame).
//
// Concurrency: Publisher and Channels are safe for concurrent use; Channels
// is a small value. Nothing here holds a lock across a Redis call.
//
// The typed helpers of the two notification kinds the design names,
// friend requests and game invites, are in notify.go.
package publish
