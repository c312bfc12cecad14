// Package admit holds the gateway's admission checks that need nothing
// else of it: the browser origins allowed (Origins), the client address
// behind trusted proxies (ClientIP), the per-user token bucket of the token
// endpoint (UserLimiter) and the blocking of clients after repeated failed
// authentication (AuthBlocker).
//
// Each type is built once by the gateway's New and is safe for concurrent
// use: Origins is read-only after NewOrigins; UserLimiter and AuthBlocker
// keep their state in shards, each guarded by its own mutex, and take no
// other lock while holding one (they are leaves of the lock order in
// docs/LOCKS.md). A nil
// *AuthBlocker blocks no one (blocking is off).
package admit
