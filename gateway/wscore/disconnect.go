package wscore

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

// Disconnect is why a socket ends: the close code and the short reason text
// sent in the close frame. It implements error, so the read path can return
// it to close the socket.
type Disconnect struct {
	Code   ws.StatusCode
	Reason string
}

func (d *Disconnect) Error() string {
	return "close " + strconv.Itoa(int(d.Code)) + " " + d.Reason
}

// The close codes the core itself sends: RFC 6455 codes for broken clients,
// 1001 for a silent one and 4009 for one whose output queue overflowed.
var (
	DisconnectNormal       = &Disconnect{1000, "normal_closure"}
	DisconnectIdle         = &Disconnect{1001, "idle_timeout"}
	DisconnectProtocol     = &Disconnect{1002, "protocol_error"}
	DisconnectInvalidUTF8  = &Disconnect{1007, "invalid_utf8"}
	DisconnectTooBig       = &Disconnect{1009, "message_too_big"}
	DisconnectSlowConsumer = &Disconnect{4009, "slow_consumer"}
)

// Ends without a close frame from the server, reported to OnClose and used
// only in logs and metrics (1006 is never sent on the wire).
var (
	EndClientGone    = &Disconnect{1006, "connection_lost"}
	EndWriteTimeout  = &Disconnect{1006, "write_timeout"}
	EndWriteError    = &Disconnect{1006, "write_error"}
	EndCloseTimeout  = &Disconnect{1006, "close_timeout"}
	EndShutdownForce = &Disconnect{1006, "shutdown_deadline"}
)

// errStopRead ends parsing after a close frame: nothing after it counts.
var errStopRead = errors.New("wscore: stop reading")

// asDisconnect returns the close that a read error asks for: a *Disconnect
// itself, or the code for a client that broke RFC 6455 (wsframe's errors);
// nil for any other error.
func asDisconnect(err error) *Disconnect {
	var d *Disconnect
	switch {
	case err == nil:
		return nil
	case errors.As(err, &d):
		return d
	case errors.Is(err, wsframe.ErrProtocol):
		return DisconnectProtocol
	case errors.Is(err, wsframe.ErrTooBig):
		return DisconnectTooBig
	case errors.Is(err, wsframe.ErrInvalidUTF8):
		return DisconnectInvalidUTF8
	}
	return nil
}
