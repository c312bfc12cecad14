package fanout

import (
	"encoding/json"
	"errors"

	"github.com/herald-gw/herald/fanout/publish"
)

// The reasons a received message is not delivered, the values of the label
// of herald_broker_dropped_total.
const (
	DropBadChannel = "bad_channel" // the channel is none of the names Channels.Parse knows
	DropBadControl = "bad_control" // the control payload is not JSON, or has no user_id
	DropUnknownOp  = "unknown_op"  // the control op is not one this version knows
)

// DropReasons are every value of the label.
var DropReasons = []string{DropBadChannel, DropBadControl, DropUnknownOp}

// DecodeControl parses a control payload; it returns the drop reason when
// no replica applies it, "" otherwise.
func DecodeControl(payload []byte) (publish.Control, string) {
	var c publish.Control
	if err := json.Unmarshal(payload, &c); err != nil {
		return publish.Control{}, DropBadControl
	}
	switch err := c.Check(); {
	case errors.Is(err, publish.ErrUnknownOp):
		return c, DropUnknownOp
	case err != nil:
		return c, DropBadControl
	}
	return c, ""
}
