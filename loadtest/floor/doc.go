// Package floor is the load tester's yardstick: the least a server can do
// to speak herald's contract to the load tester, so that herald's cost per
// socket, handshake and delivery can be compared with it in the same run.
//
// Its token POST checks the session's HS256 signature when it is given the
// secret (one HMAC, as herald's does) and answers with the user id as the
// token, which the upgrade takes unverified; there is no Redis in a
// handshake: token POST, accept, upgrade, one welcome write. It keeps each
// socket as a bare descriptor in
// one epoll instance (no goroutine, no buffer, no queue), receives every
// user and broadcast message from Redis on one connection
// (PSUBSCRIBE user:*, SUBSCRIBE broadcast) read with internal/resp, frames
// it once into a reused buffer and writes it to each target socket with one
// non-blocking write system call, allocating nothing per message; a socket
// whose kernel buffer is full loses the message (counted). It serves
// /metrics with the process collector and herald's counter names
// (herald_connects_total, herald_messages_delivered_total, herald_sockets),
// so the load tester reads its cost like a replica's. Never deploy it.
//
// Concurrency: mu guards the socket maps; the Redis loop writes to sockets
// under it, and the epoll loop closes them under it, so a descriptor is
// never written after it was closed. HTTP handlers run on net/http's
// goroutines until the socket is registered.
package floor
