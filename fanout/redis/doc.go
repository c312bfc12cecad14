// Package redis holds the brokers of the multi-replica mode, on Redis
// pub/sub: Broker for one Redis (or a Sentinel-managed primary, with
// redis.NewFailoverClient) and Cluster for a Redis Cluster. Both implement
// fanout.Broker; Cluster also implements fanout.SocketSubscriber. Each
// delivers from one goroutine per pub/sub connection, in the order Redis
// sent the messages; a Handler must not call Close. go-redis opens a pub/sub
// connection (dial, TLS, Sentinel, authentication); the broker then writes
// its own commands on it and reads it with internal/resp, without
// allocating, and hands the Handler slices of its read buffer, valid for
// the call.
//
// # Channels
//
// publish.Channels names everything, under a configurable prefix (empty by default):
// "<prefix>user:<user_id>", "<prefix>socket:<socket_id>",
// "<prefix>broadcast", "<prefix>broadcast:except:<user_id>" and
// "<prefix>herald:control", whose payload is a Control as JSON. Payloads are
// delivered verbatim.
//
// Each replica has a node id (publish.ValidNodeID, publish.NewNodeID), and its socket ids
// are "<node_id>.<suffix>". A replica subscribes once, at connection time,
// to what every replica needs: SUBSCRIBE "<prefix>broadcast" and
// "<prefix>herald:control", and PSUBSCRIBE "<prefix>socket:<node_id>.*" (the
// messages of its own sockets, whatever their number, with one pattern;
// not in a Redis Cluster, see below) and
// "<prefix>broadcast:except:*". User channels are subscribed on demand:
// Subscribe and Unsubscribe only record what is wanted, and a flusher sends
// batched SUBSCRIBE and UNSUBSCRIBE commands, keeping a user subscribed for
// a grace period after its last Unsubscribe. The channel Subscribe returns
// closes once Redis has confirmed the subscription.
//
// When the pub/sub connection fails (a read error, or a health PING left
// unanswered), the Broker reports not Ready, reconnects with jittered
// exponential backoff, subscribes again to everything wanted in batches, and
// once Redis has confirmed it all, reports Ready and calls Handler.Resync:
// messages published meanwhile were lost. With a Sentinel failover client
// (redis.NewFailoverClient) the same broker follows failovers: each
// reconnection asks the sentinels for the primary.
//
// # Redis Cluster
//
// Cluster uses sharded pub/sub for user and socket channels, named
// "<prefix>user:{<user_id>}" and "<prefix>socket:{<socket_id>}"
// (NewShardedChannels) so that the hash tag picks the slot. Redis 7 has no
// sharded pattern subscription, so instead of the socket pattern the
// gateway subscribes each local socket's channel (SocketSubscriber, which
// Cluster alone implements; no grace on UnsubscribeSocket, since a
// socket id is never reused). It keeps one Broker in sharded mode per
// master, which tracks its subscriptions by channel name (SSUBSCRIBE, one
// command per hash slot, as Redis requires), and one classic broker
// connected to any node for broadcast, broadcast-except and control
// messages, which a cluster relays to every node. A refresh loop reads
// CLUSTER SLOTS every RefreshInterval and when a shard reports trouble (a
// lost connection, a server-pushed SUNSUBSCRIBE); a MOVED reply to an
// SSUBSCRIBE names the slot's new master and is applied at once, without
// dropping the shard's connection. Channels whose slot changed master move
// to the new master's shard (a channel the server dropped while its slot
// stayed is subscribed again where it is), and once subscribed the
// sockets of those that had been active (the user's, or the one socket)
// receive {"type":"resync"} through Handler.Deliver. A shard whose connection is restored resyncs
// its own channels the same way; only a restored classic connection calls
// Handler.Resync. The lock order is in docs/LOCKS.md.
// publish.Publisher and inbox.Redis pick the names and the command (SPUBLISH
// or PUBLISH) from the client's type (publish.ChannelsFor).
package redis
