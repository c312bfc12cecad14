package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The notifications of the contract: a common envelope, and typed helpers
// for the two kinds the design names, friend requests and game invites.

// Person names the user a notification comes from.
type Person struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Notification is the envelope of the contract's notification payloads:
//
//	{"type":"…","id":"<uuid>","ts":<unix ms>,"data":{…}}
type Notification struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	TS   int64  `json:"ts"` // Unix milliseconds
	Data any    `json:"data"`
}

// Notify sends a notification of type typ with data (marshalled with
// encoding/json) to every socket of toUserID. It returns the notification's
// id, a fresh UUID, also when the PUBLISH fails.
func (p *Publisher) Notify(ctx context.Context, toUserID, typ string, data any) (id string, err error) {
	n := Notification{Type: typ, ID: uuid.NewString(), TS: p.now().UnixMilli(), Data: data}
	payload, err := json.Marshal(n)
	if err != nil {
		return n.ID, fmt.Errorf("fanout: encode %s notification: %w", typ, err)
	}
	_, err = p.SendToUser(ctx, toUserID, payload)
	return n.ID, err
}

// NotifyFriendRequest tells toUserID that from sent a friend request:
//
//	{"type":"friend_request","id":"<uuid>","ts":<unix ms>,"data":{"from":{"id":"7","name":"alice"}}}
func (p *Publisher) NotifyFriendRequest(ctx context.Context, toUserID string, from Person) (id string, err error) {
	return p.Notify(ctx, toUserID, "friend_request", friendRequest{From: from})
}

// NotifyGameInvite tells toUserID that from invites them to gameID until
// expiresAt:
//
//	{"type":"game_invite","id":"<uuid>","ts":<unix ms>,"data":{"from":{"id":"7","name":"alice"},"game_id":"g-91","expires_at":<unix ms>}}
func (p *Publisher) NotifyGameInvite(ctx context.Context, toUserID string, from Person, gameID string, expiresAt time.Time) (id string, err error) {
	return p.Notify(ctx, toUserID, "game_invite", gameInvite{From: from, GameID: gameID, ExpiresAt: expiresAt.UnixMilli()})
}

type friendRequest struct {
	From Person `json:"from"`
}

type gameInvite struct {
	From      Person `json:"from"`
	GameID    string `json:"game_id"`
	ExpiresAt int64  `json:"expires_at"` // Unix milliseconds
}
