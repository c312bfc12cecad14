// Package gateway is herald's socket core and HTTP surface: the token
// endpoint, the WebSocket handshake, the per-user registry, heartbeats,
// fan-out to sockets and graceful shutdown.
//
// # Sockets without goroutines
//
// After the handshake a socket holds no goroutine and, between frames, no
// buffer. Its descriptor sits in one of a few epoll instances (pollers), each
// served by one goroutine that reads whatever is ready with non-blocking
// reads into the poller's shared buffer and parses it in place. Output is a
// per-socket queue of frames counted in bytes; a socket with queued output is
// handed to a small pool of write workers, which write it with non-blocking
// writev and, when the kernel buffer is full, ask the poller to report when
// it can take more. No worker ever waits on a socket. A socket whose queue
// would pass MaxQueueBytes is closed with 4009; one whose output makes no
// progress for WriteTimeout is dropped.
//
// # Fan-out
//
// Messages arrive from a fanout.Broker (the in-process API publishes through
// it too). Each message is framed once and the same bytes are queued to every
// target socket; the registry's shard locks are held only while copying the
// target list.
//
// # Concurrency
//
// Server's exported methods are safe for concurrent use. Each Conn field
// documents its owner: the poller goroutine (read state), the heartbeat loop
// (ping schedule) or Conn.mu (output queue and lifecycle). A socket is torn
// down exactly once, by whichever of them sees it end first.
package gateway
