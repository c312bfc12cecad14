// Package replay remembers which WS token ids (jti) have been consumed, so
// that every token opens at most one socket.
//
// A Store answers Consume exactly once with true for a given jti while the
// record lives; every later or concurrent call gets false. A Store that cannot
// reach its backing service returns an error wrapping ErrUnavailable, and the
// caller must fail closed (herald closes the socket with 1013). All methods
// are safe for concurrent use.
//
// Two implementations exist: Memory, for the embedded single-process mode,
// and Redis, which stores `SET <prefix>jti:<jti> 1 NX PX <ttl>` so that all
// replicas share one view.
package replay
