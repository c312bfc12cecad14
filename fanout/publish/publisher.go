package publish

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// PublisherConfig configures NewPublisher. Every zero value means the default
// named in the field's comment.
type PublisherConfig struct {
	// Prefix starts every channel name; it must be herald's
	// --channel-prefix. Empty means none.
	Prefix string
	// Now stamps the notifications' "ts". Nil means time.Now.
	Now func() time.Time
	// Inbox bounds the users' inboxes: every user event is appended to
	// "<prefix>inbox:<user_id>" and published with its id (AppendScript),
	// so that a socket that reconnects with since gets what it missed. Use
	// herald's --inbox-max-len and --inbox-retention.
	Inbox InboxConfig
	// NoInbox makes user events plain PUBLISHes: no id, no catch-up. False
	// means user events go through the inbox.
	NoInbox bool
}

// Publisher is what a backend service written in Go uses to reach sockets
// through herald: it PUBLISHes on the channels of the contract, and appends
// user events to the users' inboxes (AppendScript), so it needs only the
// Redis client the service already has. It is safe for concurrent use.
//
// The mode follows the client: with a *redis.ClusterClient, user and socket
// messages go by SPUBLISH on "user:{<id>}" and "socket:{<id>}" (herald's
// --redis-cluster mode); with any other client, by PUBLISH on "user:<id>"
// and "socket:<id>" (one Redis, or a Sentinel-managed primary). Broadcast
// and control messages use PUBLISH in both.
//
// Each send returns the number of receivers Redis reported for the PUBLISH:
// the herald replicas subscribed to that channel (0 when no replica holds a
// socket of the user, for instance), plus any other subscriber, such as a
// redis-cli SUBSCRIBE session. With Redis Cluster it counts only the
// subscribers of the node that ran the command. It helps debugging; a
// message that found no receiver is not an error.
type Publisher struct {
	client  redis.UniversalClient // the caller's
	ch      Channels              // sharded names when client is a cluster client
	now     func() time.Time
	inbox   InboxConfig // defaults filled
	noInbox bool
}

// ErrNilClient is returned by NewPublisher without a client.
var ErrNilClient = errors.New("fanout: NewPublisher needs a Redis client")

// NewPublisher returns a Publisher that publishes with client, which stays
// the caller's. It returns ErrNilClient if client is nil, and an error for
// an invalid cfg.Inbox (a negative size or age).
func NewPublisher(client redis.UniversalClient, cfg PublisherConfig) (*Publisher, error) {
	if client == nil {
		return nil, ErrNilClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Inbox = cfg.Inbox.WithDefaults()
	if err := cfg.Inbox.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{client: client, ch: ChannelsFor(client, cfg.Prefix), now: cfg.Now, inbox: cfg.Inbox, noInbox: cfg.NoInbox}, nil
}

// Channels returns the names the Publisher publishes on.
func (p *Publisher) Channels() Channels { return p.ch }

// Publish sends payload to the sockets to names: verbatim, except that a
// user event goes through the inbox (see SendToUser).
func (p *Publisher) Publish(ctx context.Context, to Target, payload []byte) (receivers int64, err error) {
	name, err := p.ch.Name(to)
	if err != nil {
		return 0, err
	}
	if to.Kind == ToUser && !p.noInbox {
		_, n, err := appendEvent(ctx, p.client, p.ch, p.inbox, to.ID, payload)
		return n, err
	}
	if (to.Kind == ToUser || to.Kind == ToSocket) && p.ch.Sharded() {
		return p.publishCmd(ctx, "spublish", name, payload)
	}
	return p.publish(ctx, name, payload)
}

// SendToUser sends payload to every socket of userID, on every replica.
// Unless the Publisher has NoInbox, payload must be a JSON object
// (ErrNotObject): it is appended to the user's inbox and its sockets
// receive it with "inbox_id" spliced in first, in one atomic step
// (AppendScript).
func (p *Publisher) SendToUser(ctx context.Context, userID string, payload []byte) (receivers int64, err error) {
	return p.Publish(ctx, User(userID), payload)
}

// AppendToUser is SendToUser through the inbox whatever NoInbox says; it
// also returns the event's inbox id.
func (p *Publisher) AppendToUser(ctx context.Context, userID string, payload []byte) (id string, receivers int64, err error) {
	return appendEvent(ctx, p.client, p.ch, p.inbox, userID, payload)
}

// SendToSocket sends payload to the one socket with this id.
func (p *Publisher) SendToSocket(ctx context.Context, socketID string, payload []byte) (receivers int64, err error) {
	return p.Publish(ctx, Socket(socketID), payload)
}

// Broadcast sends payload to every socket on every replica.
func (p *Publisher) Broadcast(ctx context.Context, payload []byte) (receivers int64, err error) {
	return p.Publish(ctx, All(), payload)
}

// BroadcastExcept sends payload to every socket except those of userID.
func (p *Publisher) BroadcastExcept(ctx context.Context, userID string, payload []byte) (receivers int64, err error) {
	return p.Publish(ctx, AllExcept(userID), payload)
}

// Disconnect closes every socket of userID, on every replica, with close
// code 4000; reason is logged by herald.
func (p *Publisher) Disconnect(ctx context.Context, userID, reason string) (receivers int64, err error) {
	payload, err := Control{Op: OpDisconnect, UserID: userID, Reason: reason}.Encode()
	if err != nil {
		return 0, err
	}
	return p.publish(ctx, p.ch.Control(), payload)
}

// publish runs PUBLISH once. It is never retried, whatever the client's
// MaxRetries: when the connection drops after Redis ran the command, a retry
// would deliver the message a second time. The caller gets the error and
// decides; a PUBLISH that failed may or may not have been delivered.
func (p *Publisher) publish(ctx context.Context, channel string, payload []byte) (int64, error) {
	return p.publishCmd(ctx, "publish", channel, payload)
}

// publishCmd runs cmd ("publish" or "spublish") on channel: the one place
// where the mode picks the command. It is never retried by go-redis,
// whatever the client's MaxRetries: when the connection drops after Redis
// ran the command, a retry would deliver the message a second time. The
// caller gets the error and decides; a PUBLISH that failed may or may not
// have been delivered.
func (p *Publisher) publishCmd(ctx context.Context, cmd, channel string, payload []byte) (int64, error) {
	c := noRetryIntCmd{redis.NewIntCmd(ctx, cmd, channel, payload)}
	_ = p.client.Process(ctx, c)
	n, err := c.Result()
	if err != nil {
		return 0, fmt.Errorf("fanout: %s to %s: %w", cmd, channel, err)
	}
	return n, nil
}

// noRetryIntCmd is an IntCmd that go-redis runs at most once, whatever the
// client's MaxRetries: for commands that must not run twice.
type noRetryIntCmd struct{ *redis.IntCmd }

func (noRetryIntCmd) NoRetry() bool { return true }
