// Package resp reads replies from a Redis connection in subscribed mode
// without allocating: the pushes of pub/sub (message, pmessage, smessage,
// subscription confirmations, pong) in RESP2 or RESP3, and the simple
// replies around them.
//
// A Reader owns one read buffer. Next returns one reply whose elements are
// slices of that buffer, valid until the next call; a reply larger than
// the buffer grows it once, and after that the buffer is reused, so that a
// steady stream of messages costs no allocation. Only what a subscriber
// connection receives is understood: a scalar, or an array or push of
// scalars (bulk and simple strings, integers, nulls). Anything nested is
// refused with ErrUnsupported.
//
// Concurrency: a Reader is owned by the one goroutine that reads its
// connection. Append* build commands into a caller's buffer.
package resp
