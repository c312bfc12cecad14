package fanout

import (
	"encoding/json"
	"errors"
)

// OpDisconnect is the Control op that closes every socket of a user with
// close code 4000.
const OpDisconnect = "disconnect"

// OpEvict is the Control op that closes one socket (SocketID, of UserID)
// with close code 4008: the cluster-wide per-user cap's evict-oldest policy
// made room for a newer socket of the user.
const OpEvict = "evict"

// ErrInvalidControl is returned by PublishControl for a command no replica
// would apply: an unknown op, or no user id.
var ErrInvalidControl = errors.New("fanout: invalid control command")

// The reasons a received message is not delivered, the values of the label
// of herald_broker_dropped_total.
const (
	dropBadChannel = "bad_channel" // the channel is none of the names Channels.Parse knows
	dropBadControl = "bad_control" // the control payload is not JSON, or has no user_id
	dropUnknownOp  = "unknown_op"  // the control op is not one this version knows
)

var dropReasons = []string{dropBadChannel, dropBadControl, dropUnknownOp}

// checkControl returns the drop reason of c, or "" when a replica applies it.
func checkControl(c Control) string {
	switch {
	case c.Op != OpDisconnect && c.Op != OpEvict:
		return dropUnknownOp
	case c.UserID == "", c.Op == OpEvict && c.SocketID == "":
		return dropBadControl
	}
	return ""
}

// encodeControl validates c and returns its JSON.
func encodeControl(c Control) ([]byte, error) {
	if checkControl(c) != "" {
		return nil, ErrInvalidControl
	}
	return json.Marshal(c)
}

// decodeControl parses a control payload. On failure it returns the drop
// reason.
func decodeControl(payload []byte) (Control, string) {
	var c Control
	if err := json.Unmarshal(payload, &c); err != nil {
		return Control{}, dropBadControl
	}
	if reason := checkControl(c); reason != "" {
		return c, reason
	}
	return c, ""
}
