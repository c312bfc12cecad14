// Package inbox keeps each user's recent events so that a reconnecting
// socket can be given what it missed (the catch-up of the contract's
// "since"). Inbox is the store's interface; Redis and Memory implement it.
//
// Redis keeps one Redis Stream per user, "<prefix>inbox:<user_id>", capped
// by count (XADD MAXLEN ~) and age (XTRIM MINID, PEXPIRE). It appends with
// publish.Publisher (publish.AppendScript, the file
// fanout/publish/inbox_append.lua), which appends an event and publishes it
// on the user's channel with its id, atomically; a second script reads what
// follows a given id or reports a gap, writing nothing (a user who has no
// stream gets a Position, not an entry); in the handshake the same read
// runs in one script with the consumption of the socket's WS token
// (TokenReader, replay.Redis.ConsumeIn). The append touches one key and
// the read only keys in the user's hash slot on a Redis Cluster (the
// stream, Redis' epoch key, the token's jti key), so they run unchanged on
// a Redis Cluster. A frame carrying an id is the payload with "inbox_id"
// spliced in first (publish.InboxFrame).
//
// Memory has the same rules in the process and publishes through a
// fanout.Broker while holding the user's shard lock, so a user's events
// reach the broker in id order; the lock order is in docs/LOCKS.md. Both
// stores are safe for concurrent use.
package inbox
