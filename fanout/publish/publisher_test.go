package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

func TestPublisherNotifications(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	now := time.UnixMilli(1764150000000)
	p, err := publish.NewPublisher(srv.Client(), publish.PublisherConfig{Prefix: "app:", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	next := testenv.Listen(t, srv.Client(), "app:user:42")
	ctx := context.Background()
	alice := publish.Person{ID: "7", Name: "alice"}

	tests := []struct {
		name string
		send func() (string, error)
		want string // with ID for the notification's id
	}{
		{
			"friend request",
			func() (string, error) { return p.NotifyFriendRequest(ctx, "42", alice) },
			`{"type":"friend_request","id":"ID","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`,
		},
		{
			"game invite",
			func() (string, error) {
				return p.NotifyGameInvite(ctx, "42", alice, "g-91", time.UnixMilli(1764150060000))
			},
			`{"type":"game_invite","id":"ID","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"},"game_id":"g-91","expires_at":1764150060000}}`,
		},
		{
			"escaping",
			func() (string, error) {
				return p.NotifyFriendRequest(ctx, "42", publish.Person{ID: "8", Name: `bob "<b>"`})
			},
			`{"type":"friend_request","id":"ID","ts":1764150000000,"data":{"from":{"id":"8","name":"bob \"\u003cb\u003e\""}}}`,
		},
	}
	seen := make(map[string]bool)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.send()
			if err != nil {
				t.Fatal(err)
			}
			u, err := uuid.Parse(id)
			if err != nil || u.String() != id || u.Version() != 4 {
				t.Fatalf("id %q is not a canonical v4 UUID (%v)", id, err)
			}
			if seen[id] {
				t.Fatalf("id %q reused", id)
			}
			seen[id] = true
			msg := next()
			inboxID, ok := publish.InboxFrameID([]byte(msg.Payload))
			if !ok {
				t.Fatalf("payload %s carries no inbox id", msg.Payload)
			}
			want := strings.Replace(tt.want, "ID", id, 1)
			if got := string(publish.InboxFrame(inboxID, []byte(want))); msg.Payload != got {
				t.Fatalf("payload\n got %s\nwant %s", msg.Payload, got)
			}
			// The inbox holds the payload itself, under the prefix.
			entries, err := srv.Client().XRange(ctx, "app:inbox:42", inboxID, inboxID).Result()
			if err != nil || len(entries) != 1 || entries[0].Values["p"] != want {
				t.Fatalf("inbox entry %s = %v, %v; want the payload", inboxID, entries, err)
			}
			// And field by field, as a consumer decodes it.
			var n struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				TS   int64  `json:"ts"`
				Data struct {
					From      publish.Person `json:"from"`
					GameID    string         `json:"game_id"`
					ExpiresAt int64          `json:"expires_at"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(msg.Payload), &n); err != nil {
				t.Fatal(err)
			}
			if n.ID != id || n.TS != now.UnixMilli() || n.Data.From.ID == "" || n.Type == "" {
				t.Fatalf("decoded %+v", n)
			}
		})
	}
}

func TestPublisherSends(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	p, err := publish.NewPublisher(srv.Client(), publish.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := publish.NewPublisher(srv.Client(), publish.PublisherConfig{NoInbox: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Without a subscriber, a send reports 0 receivers and no error.
	if n, err := p.SendToUser(ctx, "42", []byte("{}")); n != 0 || err != nil {
		t.Fatalf("SendToUser without subscriber = %d, %v; want 0, nil", n, err)
	}
	next := testenv.Listen(t, srv.Client(), "user:42", "socket:n1.s", "broadcast", "broadcast:except:42", "herald:control")
	tests := []struct {
		name          string
		send          func() (int64, error)
		channel, want string
	}{
		{"user without the inbox", func() (int64, error) { return plain.SendToUser(ctx, "42", []byte("u")) }, "user:42", "u"},
		{"socket", func() (int64, error) { return p.SendToSocket(ctx, "n1.s", []byte("s")) }, "socket:n1.s", "s"},
		{"broadcast", func() (int64, error) { return p.Broadcast(ctx, []byte("b")) }, "broadcast", "b"},
		{"broadcast except", func() (int64, error) { return p.BroadcastExcept(ctx, "42", []byte("e")) }, "broadcast:except:42", "e"},
		{"disconnect", func() (int64, error) { return p.Disconnect(ctx, "42", "logout") }, "herald:control",
			`{"op":"disconnect","user_id":"42","reason":"logout"}`},
		{"disconnect without reason", func() (int64, error) { return p.Disconnect(ctx, "42", "") }, "herald:control",
			`{"op":"disconnect","user_id":"42"}`},
		{"binary payload", func() (int64, error) { return plain.SendToUser(ctx, "42", []byte{0, 0xff, '\n'}) }, "user:42", "\x00\xff\n"},
		{"user through the inbox", func() (int64, error) { return p.SendToUser(ctx, "42", []byte(`{"k":1}`)) }, "user:42", `{"inbox_id":"ID","k":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.send()
			if err != nil || n != 1 {
				t.Fatalf("send = %d, %v; want 1 receiver", n, err)
			}
			msg := next()
			if id, ok := publish.InboxFrameID([]byte(msg.Payload)); ok {
				tt.want = strings.Replace(tt.want, "ID", id, 1)
			}
			if msg.Channel != tt.channel || msg.Payload != tt.want {
				t.Fatalf("got %q on %q, want %q on %q", msg.Payload, msg.Channel, tt.want, tt.channel)
			}
		})
	}

	if _, err := p.SendToUser(ctx, "42", []byte(`["not an object"]`)); !errors.Is(err, publish.ErrNotObject) {
		t.Errorf("SendToUser of an array through the inbox = %v, want ErrNotObject", err)
	}
	if _, err := p.SendToUser(ctx, "", []byte("{}")); !errors.Is(err, publish.ErrInvalidTarget) {
		t.Errorf("SendToUser to an empty id = %v, want ErrInvalidTarget", err)
	}
	if _, err := p.Disconnect(ctx, "", "x"); !errors.Is(err, publish.ErrInvalidControl) {
		t.Errorf("Disconnect of an empty id = %v, want ErrInvalidControl", err)
	}
	if _, err := p.NotifyFriendRequest(ctx, "", publish.Person{}); !errors.Is(err, publish.ErrInvalidTarget) {
		t.Errorf("NotifyFriendRequest to an empty id = %v, want ErrInvalidTarget", err)
	}
	if _, err := p.Notify(ctx, "42", "bad", func() {}); err == nil {
		t.Error("Notify with data that cannot be encoded succeeded")
	}
}

func TestNewPublisherNilClient(t *testing.T) {
	if _, err := publish.NewPublisher(nil, publish.PublisherConfig{}); !errors.Is(err, publish.ErrNilClient) {
		t.Fatalf("NewPublisher(nil) = %v, want ErrNilClient", err)
	}
}

// TestPublisherNoRetry publishes through a proxy that drops the connection
// once Redis ran the command, with a client whose options allow retries (the
// go-redis default): the message must reach the subscriber once, not once
// per retry, whether it is a plain PUBLISH or an inbox append.
func TestPublisherNoRetry(t *testing.T) {
	rd := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, rd.Addr())
	client := redis.NewClient(&redis.Options{Addr: proxy.Addr()}) // MaxRetries 0: 3 retries
	defer client.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		noInbox bool
	}{{"plain publish", true}, {"inbox append", false}} {
		t.Run(tc.name, func(t *testing.T) {
			user := strings.ReplaceAll(tc.name, " ", "-")
			sub := rd.Client().Subscribe(ctx, "user:"+user)
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			pub, err := publish.NewPublisher(client, publish.PublisherConfig{NoInbox: tc.noInbox})
			if err != nil {
				t.Fatal(err)
			}
			// Loaded, so that the first EVALSHA runs it (a NOSCRIPT answer
			// would be dropped instead, harmlessly).
			if err := rd.Client().ScriptLoad(ctx, publish.AppendScript).Err(); err != nil {
				t.Fatal(err)
			}
			marker := []byte(`{"type":"once-` + user + `"}`)
			proxy.DropAfterForward(marker, 1)
			if _, err := pub.SendToUser(ctx, user, marker); err == nil {
				t.Error("SendToUser: got no error for a dropped connection")
			}
			if err := rd.Client().Publish(ctx, "user:"+user, "end").Err(); err != nil {
				t.Fatal(err)
			}
			got := 0
			for {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				m, err := sub.ReceiveMessage(rctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if m.Payload == "end" {
					break
				}
				got++
			}
			if got != 1 {
				t.Errorf("the message reached the subscriber %d times, want 1", got)
			}
			if !tc.noInbox {
				if n := rd.Client().XLen(ctx, "inbox:"+user).Val(); n != 1 {
					t.Errorf("the inbox holds %d events, want 1", n)
				}
			}
		})
	}
}
