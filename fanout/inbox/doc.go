// Package inbox keeps each user's recent events so that a reconnecting
// socket can be given what it missed (the catch-up of the contract's
// "since"). Inbox is the store's interface; Redis and Memory implement it.
//
// Redis keeps one Redis Stream per user, "<prefix>inbox:<user_id>", capped
// by count (XADD MAXLEN ~) and age (XTRIM MINID, PEXPIRE). It appends with
// publish.Publisher (publish.AppendScript, the file
// fanout/publish/inbox_append.lua), which appends an event and publishes it
// on the user's channel with its id, atomically; a second script reads what
// follows a given id or reports a gap. Both scripts touch one key, so they
// run unchanged on a Redis Cluster. A frame carrying an id is the payload
// with "inbox_id" spliced in first (publish.InboxFrame).
//
// Memory has the same rules in the process and publishes through a
// fanout.Broker while holding the user's shard lock, so a user's events
// reach the broker in id order; the lock order is in docs/LOCKS.md. Both
// stores are safe for concurrent use.
package inbox
