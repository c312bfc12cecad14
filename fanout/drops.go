package fanout

import (
	"encoding/json"
	"errors"

	"github.com/herald-gw/herald/fanout/publish"
)

// The reasons a received message is not delivered, the values of the label
// of herald_broker_dropped_total.
const (
	dropBadChannel = "bad_channel" // the channel is none of the names Channels.Parse knows
	dropBadControl = "bad_control" // the control payload is not JSON, or has no user_id
	dropUnknownOp  = "unknown_op"  // the control op is not one this version knows
)

var dropReasons = []string{dropBadChannel, dropBadControl, dropUnknownOp}

// decodeControl parses a control payload; it returns the drop reason when
// no replica applies it, "" otherwise.
func decodeControl(payload []byte) (publish.Control, string) {
	var c publish.Control
	if err := json.Unmarshal(payload, &c); err != nil {
		return publish.Control{}, dropBadControl
	}
	switch err := c.Check(); {
	case errors.Is(err, publish.ErrUnknownOp):
		return c, dropUnknownOp
	case err != nil:
		return c, dropBadControl
	}
	return c, ""
}
