// Package wscore is herald's epoll socket core: it serves server-side
// WebSocket connections, after their HTTP upgrade, without a goroutine or
// a buffer per idle socket.
//
// # Contract
//
// A Core is a few epoll loops (pollers), a pool of write workers and a
// heartbeat. NewConn takes over an upgraded net.Conn (it must expose its
// descriptor through syscall.Conn): it keeps a non-blocking duplicate of
// the descriptor and closes the net.Conn, so that every read, write and
// epoll_ctl afterwards is a plain system call with no runtime poll
// descriptor behind it. It returns a Conn in its Handshake state, owned by the caller's goroutine: nothing is read from it, and
// frames given to Send are held. Start ends the handshake: the socket is
// registered with a poller, the held frames start flowing, and from then on
// the core owns it until it closes. The socket's Handler receives its
// events: OnMessage for each complete client message (text is valid UTF-8,
// fragments are reassembled, at most Config.MaxMessageBytes), OnWritten
// after a socket write completed relayed messages (for latency), and
// OnClose, exactly once, after the descriptor is closed. Pings, pongs and
// the close handshake (RFC 6455 §5.5, §7) are answered by the core (a
// client that shuts its side after its close frame still gets the echo); a
// client that breaks the protocol is closed with 1002, 1007 or 1009.
//
// Frames are built once (TextFrame) and may be sent to any number of
// sockets: their bytes are shared and never modified. Send never blocks:
// output is a per-socket queue counted in bytes. A frame larger than
// Config.MaxQueueBytes is refused (ErrTooLarge) without touching the
// socket; a socket whose queue would pass the cap is shed with 4009
// (ErrSlowConsumer). A socket whose output makes no progress for
// WriteTimeout is dropped; one silent for IdleTimeout is closed with 1001;
// one that does not answer a close frame within CloseTimeout is dropped.
// Deadlines are enforced by the heartbeat, which ticks every
// min(PingInterval/4, 1s).
//
// The core needs Linux (epoll). TLS, the HTTP upgrade and authentication are
// the caller's.
//
// # Lifecycle
//
// A socket's state (Handshake, Active, Closing, Closed) changes only through
// one transition function, under the socket's lock; an event a state does
// not allow changes nothing (see state.go for the table). A socket closed
// during its handshake goes to Closing with its held output dropped: Start
// then writes only its close frame, and it is never Active. A socket
// torn down before Start is never registered with a poller.
//
// # Concurrency
//
// Every exported method is safe for concurrent use. Each piece of socket
// state has one owner, written next to its field: the handshake goroutine
// until Start, then the poller goroutine for input (the frame parser); the
// heartbeat for the ping schedule; Conn.mu for everything else, the
// lifecycle state, the output queue and the epoll interest included. Every
// epoll_ctl for a socket (add, arming and disarming EPOLLOUT, turning input
// off, delete) runs under its Conn.mu, so the interest registered in the
// kernel always matches Conn.waitOut and Conn.inputDone and a writable
// report can never be lost between a write worker and the poller. The write itself runs without the lock: the
// frames it covers are marked in flight, and a concurrent shed keeps them.
// A poller's fd→socket map removes an entry only if it still points to the
// socket being removed, and a socket is removed from epoll (under its lock)
// before its descriptor is closed; the descriptor counts the system calls
// under way on it and is closed by whichever of teardown and the last of
// them comes last (fd_linux.go), so a descriptor number reused by a newer
// socket is never touched on behalf of an older one.
//
// Handler methods are called with no lock of the core held.
//
// # Lock order
//
// Conn.mu comes before Core.mu (read) and poller.mu, and before
// writePool.mu; poller.mu and writePool.mu are leaves. The order of the
// whole process is in docs/LOCKS.md.
package wscore
