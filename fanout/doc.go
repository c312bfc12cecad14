// Package fanout moves messages between the services that publish them and
// the gateway replicas that hold the sockets.
//
// A Broker carries four kinds of message, named by a Target: to every socket
// of a user, to one socket, to every socket (broadcast, optionally except
// one user's), and control commands (disconnect a user). A replica
// subscribes to a user's messages while it holds at least one of that user's
// sockets. Handler methods must not block, and must not call the broker's
// Close.
//
// Memory is the embedded single-process broker: it delivers synchronously on
// the publisher's goroutine, and keeps no lock while it calls the Handler.
// The Redis brokers (one Redis or Sentinel, and Redis Cluster) are in
// package fanout/redis; they share this package's Metrics, DropReasons and
// DecodeControl. Backend services written in Go publish with package
// fanout/publish, which also defines the channel names, targets and control
// commands this package uses.
//
// # Inbox
//
// The users' inboxes, whose events travel on the user channels, are in
// package fanout/inbox.
package fanout
