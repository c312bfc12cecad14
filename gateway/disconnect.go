package gateway

import (
	"strconv"

	"github.com/gobwas/ws"
)

// Disconnect is why the server closes a socket: the close code and the short
// reason text of the contract's close-code table. It implements error, so
// the read path can return it to close the socket.
type Disconnect struct {
	Code   ws.StatusCode
	Reason string
}

func (d *Disconnect) Error() string {
	return "close " + strconv.Itoa(int(d.Code)) + " " + d.Reason
}

// The close codes of the wire contract, plus the RFC 6455 codes the read path
// uses for broken clients.
var (
	DisconnectUser           = &Disconnect{4000, "disconnected"}
	DisconnectTokenExpired   = &Disconnect{4001, "token_expired"}
	DisconnectTokenInvalid   = &Disconnect{4002, "token_invalid"}
	DisconnectTokenReused    = &Disconnect{4003, "token_reused"}
	DisconnectTooMany        = &Disconnect{4008, "too_many_connections"}
	DisconnectSlowConsumer   = &Disconnect{4009, "slow_consumer"}
	DisconnectRateLimited    = &Disconnect{4029, "rate_limited"}
	DisconnectServiceRestart = &Disconnect{1012, "service_restart"}
	DisconnectTryAgainLater  = &Disconnect{1013, "try_again_later"}

	DisconnectNormal      = &Disconnect{1000, "normal_closure"}
	DisconnectIdle        = &Disconnect{1001, "idle_timeout"}
	DisconnectProtocol    = &Disconnect{1002, "protocol_error"}
	DisconnectInvalidUTF8 = &Disconnect{1007, "invalid_utf8"}
	DisconnectTooBig      = &Disconnect{1009, "message_too_big"}
)

// Codes that a socket ends with without a close frame from the server; they
// are only used in logs and metrics (1006 is never sent on the wire).
var (
	endClientGone    = &Disconnect{1006, "connection_lost"}
	endWriteTimeout  = &Disconnect{1006, "write_timeout"}
	endWriteError    = &Disconnect{1006, "write_error"}
	endCloseTimeout  = &Disconnect{1006, "close_timeout"}
	endShutdownForce = &Disconnect{1006, "shutdown_deadline"}
)

// knownCodes seeds the disconnect counter so that every series starts at 0.
var knownCodes = []*Disconnect{
	DisconnectUser, DisconnectTokenExpired, DisconnectTokenInvalid, DisconnectTokenReused,
	DisconnectTooMany, DisconnectSlowConsumer, DisconnectRateLimited, DisconnectServiceRestart,
	DisconnectTryAgainLater, DisconnectNormal, DisconnectIdle, DisconnectProtocol,
	DisconnectInvalidUTF8, DisconnectTooBig, endClientGone,
}
