package publish

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Control is a command on the control channel. Op "disconnect" closes every
// socket of UserID with 4000; op "evict" closes the socket SocketID of
// UserID with 4008. Reason is informational (logged).
type Control struct {
	Op       string `json:"op"`
	UserID   string `json:"user_id"`
	SocketID string `json:"socket_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// OpDisconnect is the Control op that closes every socket of a user with
// close code 4000.
const OpDisconnect = "disconnect"

// OpEvict is the Control op that closes one socket (SocketID, of UserID)
// with close code 4008: the cluster-wide per-user cap's evict-oldest policy
// made room for a newer socket of the user.
const OpEvict = "evict"

// ErrInvalidControl is returned for a command no replica would apply: an
// unknown op, or no user id. ErrUnknownOp wraps it for the first case.
var (
	ErrInvalidControl = errors.New("fanout: invalid control command")
	ErrUnknownOp      = fmt.Errorf("%w: unknown op", ErrInvalidControl)
)

// Check returns nil when a replica applies c, ErrUnknownOp for an op this
// version does not know, and ErrInvalidControl for a command without a user
// id (or an evict without a socket id).
func (c Control) Check() error {
	switch {
	case c.Op != OpDisconnect && c.Op != OpEvict:
		return ErrUnknownOp
	case c.UserID == "", c.Op == OpEvict && c.SocketID == "":
		return ErrInvalidControl
	}
	return nil
}

// Encode returns c as the JSON payload of the control channel, or
// ErrInvalidControl for a command no replica would apply.
func (c Control) Encode() ([]byte, error) {
	if c.Check() != nil {
		return nil, ErrInvalidControl
	}
	return json.Marshal(c)
}
