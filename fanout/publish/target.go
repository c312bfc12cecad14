package publish

import "errors"

// ErrInvalidTarget is returned for a Target that names nobody: an unknown
// Kind, or ToUser or ToSocket with an empty ID.
var ErrInvalidTarget = errors.New("fanout: invalid target")

// Kind says who a message is for.
type Kind uint8

const (
	// ToUser reaches every socket of Target.ID, on every replica.
	ToUser Kind = iota + 1
	// ToSocket reaches the one socket whose id is Target.ID.
	ToSocket
	// ToAll reaches every socket on every replica except, when Target.ID is
	// set, the sockets of the user Target.ID (BroadcastExcept).
	ToAll
)

// Target names the recipients of a published message.
type Target struct {
	Kind Kind
	ID   string
}

// User, Socket and All build Targets.
func User(id string) Target   { return Target{Kind: ToUser, ID: id} }
func Socket(id string) Target { return Target{Kind: ToSocket, ID: id} }
func All() Target             { return Target{Kind: ToAll} }

// AllExcept reaches every socket except those of userID.
func AllExcept(userID string) Target { return Target{Kind: ToAll, ID: userID} }
