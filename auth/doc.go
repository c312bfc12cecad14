// Package auth verifies session tokens and mints and verifies WS tokens.
//
// A session token is a JWT issued by the application's main backend and
// carried in a cookie or an Authorization: Bearer header; herald only
// verifies it. Its algorithms are pinned by configuration (HS256/HS384/HS512
// with a shared secret, or RS*, PS*, ES* and EdDSA with one PEM public key
// or a JWKS file or https URL): the token header's alg must be pinned, it is
// never inferred from a key or trusted from the header alone, and "none" is
// never accepted. exp is required, nbf and iat are respected with the clock
// skew, iss and aud are checked when configured. The user id comes from a
// configurable claim; string and integer values both become a decimal string.
//
// A WS token is minted by herald for one socket: a compact JWS, HS256 with a
// secret shared by every replica, header typ "herald-ws+jwt", claims sub,
// jti (a random UUID), iat, exp and aud "herald-ws". It is short-lived and
// single use; this package returns its jti and expiry, and the caller makes
// it single use with the replay store. The two kinds are never
// interchangeable, even when their secrets are equal: a WS token needs its
// typ, aud and jti, and a session token must have neither that typ nor that
// aud.
//
// Errors wrap ErrMissingSession, ErrSessionExpired, ErrSessionInvalid,
// ErrTokenExpired or ErrTokenInvalid; "expired" is reported only for a token
// whose signature and other claims are valid. Error texts never contain the
// token, so they may be logged.
//
// Concurrency: an Authenticator is safe for concurrent use by any number of
// goroutines. Its configuration is immutable after New. With a JWKS URL,
// New starts background refresh goroutines (jwx's jwk.Cache) that stop when
// Close is called or the context given to New is cancelled; verification
// reads an immutable key snapshot that a refresh swaps atomically, so it
// never waits for a background fetch. A token whose kid is unknown forces at
// most one fetch per JWKSForcedRefreshGap, and concurrent callers wait for
// that one fetch instead of starting their own.
//
// The package reads no environment variable and keeps no global state: it
// does not change jwx's global settings.
package auth
