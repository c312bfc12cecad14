package fanout

import (
	"context"
	"errors"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("fanout: broker closed")

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

// Control is a command on the control channel. Op "disconnect" closes every
// socket of UserID with 4000; op "evict" closes the socket SocketID of
// UserID with 4008. Reason is informational (logged).
type Control struct {
	Op       string `json:"op"`
	UserID   string `json:"user_id"`
	SocketID string `json:"socket_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Handler receives what a broker delivers to this replica. Implementations
// must be safe for concurrent use, return quickly and never block on a
// socket. payload is owned by the callee after the call.
type Handler interface {
	// Deliver hands over a message for local sockets.
	Deliver(to Target, payload []byte)
	// Control applies a control command.
	Control(c Control)
	// Resync is called after the broker's connection was lost and restored
	// and every subscription is active again: messages may have been missed.
	Resync()
}

// TargetResyncer is implemented by a Handler that can tell the sockets of
// one target (a user or a socket) that their messages may have been lost:
// a RedisCluster calls ResyncTarget when one shard's connection was lost and
// restored, for the channels that shard carried. A Handler without it is
// given the resync frame, {"type":"resync"}, through Deliver.
type TargetResyncer interface {
	ResyncTarget(to Target)
}

// Broker is the replica's view of the message bus. A Broker that must be
// told about each local socket to receive its messages (RedisCluster) also
// implements SocketSubscriber.
type Broker interface {
	// Start begins delivering to h. It is called once, before any other method.
	Start(h Handler) error
	// Subscribe asks for the messages of userID. It never blocks; the
	// returned channel is closed once the subscription is active, so that a
	// message published after that reaches this replica. Calls for one user
	// are balanced: Subscribe when the replica gains its first socket of the
	// user, Unsubscribe when it loses its last one.
	Subscribe(userID string) <-chan struct{}
	// Unsubscribe drops the subscription of userID, possibly after a grace
	// period during which a new Subscribe cancels it. It never blocks.
	Unsubscribe(userID string)
	// Publish sends payload to the target through the bus, so that it takes
	// the same path as a message from a backend service.
	Publish(ctx context.Context, to Target, payload []byte) error
	// PublishControl sends a control command to every replica.
	PublishControl(ctx context.Context, c Control) error
	// Ready reports whether the broker is connected and subscribed.
	Ready() bool
	// Close stops delivery and releases resources. Nothing is delivered
	// after Close returns.
	Close() error
}

// SocketSubscriber is implemented by a Broker whose socket channels must be
// subscribed one by one: RedisCluster, because sharded pub/sub has no
// patterns. The gateway calls SubscribeSocket when it registers a socket
// and waits for the returned channel, as for Subscribe, before the
// welcome; it calls UnsubscribeSocket once when the socket goes. Other
// brokers receive every local socket's messages without it.
type SocketSubscriber interface {
	SubscribeSocket(socketID string) <-chan struct{}
	UnsubscribeSocket(socketID string)
}

// UserIDChecker is implemented by a Broker whose channel names cannot carry
// every user id that sessions may hold: RedisCluster (see
// Channels.CheckUserID). The gateway refuses a token to a user id whose
// CheckUserID fails, instead of handing out a token no handshake can use.
type UserIDChecker interface {
	CheckUserID(userID string) error
}
