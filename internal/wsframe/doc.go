// Package wsframe is herald's one WebSocket frame codec (RFC 6455 §5): the
// header parser, the incremental parser of client frames that the socket
// core uses, the builders of server (unmasked) and client (masked) frames,
// and the close frame's payload rules. The gateway's socket core, the load
// tester's client and its floor server all frame through it.
//
// It holds no state of its own and does no I/O. Its functions are safe for
// concurrent use; an Inbound belongs to one socket and is used by one
// goroutine at a time (the socket's reader), and it holds no buffer while
// its socket is idle. Frames are never compressed (no extensions are
// negotiated), so every reserved bit must be zero.
package wsframe
