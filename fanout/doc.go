// Package fanout moves messages between the services that publish them and
// the gateway replicas that hold the sockets.
//
// A Broker carries four kinds of message, named by a Target: to every socket
// of a user, to one socket, to every socket (broadcast), and control
// commands (disconnect a user). A replica subscribes to a user's messages
// while it holds at least one of that user's sockets. Messages are delivered
// to a Handler from one goroutine per broker, in the order the broker
// received them; Handler methods must not block.
//
// Memory is the embedded single-process broker; Redis uses Redis pub/sub so
// that N replicas behave as one gateway. Publisher is the small client that
// backend services use to publish through Redis.
package fanout
