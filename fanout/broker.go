package fanout

import (
	"context"
	"errors"

	"github.com/herald-gw/herald/fanout/publish"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("fanout: broker closed")

// Handler receives what a broker delivers to this replica. Implementations
// must be safe for concurrent use, return quickly and never block on a
// socket. Deliver's payload and target id are valid only for the call (the
// Redis brokers hand over slices of their read buffer): a Handler copies
// what it keeps.
type Handler interface {
	// Deliver hands over a message for local sockets.
	Deliver(to publish.Target, payload []byte)
	// Control applies a control command.
	Control(c publish.Control)
	// Resync is called after the broker's connection was lost and restored
	// and every subscription is active again: messages may have been missed.
	Resync()
}

// TargetResyncer is implemented by a Handler that can tell the sockets of
// one target (a user or a socket) that their messages may have been lost:
// a redis.Cluster calls ResyncTarget when one shard's connection was lost and
// restored, for the channels that shard carried. A Handler without it is
// given the resync frame, {"type":"resync"}, through Deliver.
type TargetResyncer interface {
	ResyncTarget(to publish.Target)
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
	Publish(ctx context.Context, to publish.Target, payload []byte) error
	// PublishControl sends a control command to every replica.
	PublishControl(ctx context.Context, c publish.Control) error
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

// closed is the channel Confirmed returns. It is never reopened.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Confirmed returns a closed channel: what Subscribe returns for a
// subscription that is already active, or that will never be.
func Confirmed() <-chan struct{} { return closed }

// UserIDChecker is implemented by a Broker whose channel names cannot carry
// every user id that sessions may hold: redis.Cluster (see
// publish.Channels.CheckUserID). The gateway refuses a token to a user id whose
// CheckUserID fails, instead of handing out a token no handshake can use.
type UserIDChecker interface {
	CheckUserID(userID string) error
}
