package gateway

import (
	"strconv"

	"github.com/herald-gw/herald/gateway/wscore"
)

// Disconnect is why the server closes a socket: the close code and the short
// reason text of the contract's close-code table. It implements error.
type Disconnect = wscore.Disconnect

// The close codes of the wire contract, plus the RFC 6455 codes the socket
// core uses for broken clients.
var (
	DisconnectUser           = &Disconnect{Code: 4000, Reason: "disconnected"}
	DisconnectTokenExpired   = &Disconnect{Code: 4001, Reason: "token_expired"}
	DisconnectTokenInvalid   = &Disconnect{Code: 4002, Reason: "token_invalid"}
	DisconnectTokenReused    = &Disconnect{Code: 4003, Reason: "token_reused"}
	DisconnectTooMany        = &Disconnect{Code: 4008, Reason: "too_many_connections"}
	DisconnectReplaced       = &Disconnect{Code: 4008, Reason: "replaced_by_newer_socket"}
	DisconnectSlowConsumer   = wscore.DisconnectSlowConsumer
	DisconnectRateLimited    = &Disconnect{Code: 4029, Reason: "rate_limited"}
	DisconnectServiceRestart = &Disconnect{Code: 1012, Reason: "service_restart"}
	DisconnectTryAgainLater  = &Disconnect{Code: 1013, Reason: "try_again_later"}

	DisconnectNormal      = wscore.DisconnectNormal
	DisconnectIdle        = wscore.DisconnectIdle
	DisconnectProtocol    = wscore.DisconnectProtocol
	DisconnectInvalidUTF8 = wscore.DisconnectInvalidUTF8
	DisconnectTooBig      = wscore.DisconnectTooBig
)

// knownCodes seeds the disconnect counter so that every series starts at 0.
var knownCodes = []*Disconnect{
	DisconnectUser, DisconnectTokenExpired, DisconnectTokenInvalid, DisconnectTokenReused,
	DisconnectTooMany, DisconnectSlowConsumer, DisconnectRateLimited, DisconnectServiceRestart,
	DisconnectTryAgainLater, DisconnectNormal, DisconnectIdle, DisconnectProtocol,
	DisconnectInvalidUTF8, DisconnectTooBig, wscore.EndClientGone,
}

// codeLabel is the disconnect counter's label for d: its code when herald
// knows it, "other" for a code a client chose (see labelledCodes).
func codeLabel(d *Disconnect) string {
	if !labelledCodes[d.Code] {
		return otherCodeLabel
	}
	return strconv.Itoa(int(d.Code))
}
