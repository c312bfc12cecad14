// Package replay remembers which WS token ids (jti) have been consumed, so
// that every token opens at most one socket.
//
// A Store answers Consume exactly once with true for a given jti while the
// record lives; every later or concurrent call gets false. A Store that cannot
// reach its backing service returns an error wrapping ErrUnavailable, and the
// caller must fail closed (herald closes the socket with 1013). All methods
// are safe for concurrent use.
//
// One clock decides whether a token is still alive: Consume takes the end of
// the token's life as an absolute time and the store compares it with its
// own clock (Redis' TIME for Redis, the wall clock for Memory), refusing an
// expired token with ErrExpired.
//
// Two implementations exist: Memory, for the embedded single-process mode,
// and Redis, which runs one Lua script per Consume (GET, TIME, then
// `SET <prefix>jti:<jti> <nonce> PXAT <expiry>`) so that all replicas share
// one view and Redis' clock alone decides. Redis can also consume a token
// as the first part of a caller's script (ConsumeIn, ConsumeLua): the
// handshake's inbox read does, so that a handshake runs one script.
package replay
