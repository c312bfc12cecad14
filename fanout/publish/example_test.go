package publish_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// redisAddr is the redis-server TestMain starts for the example.
var redisAddr string

func TestMain(m *testing.M) {
	addr, stop, err := testenv.StartRedisMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redisAddr = addr
	code := m.Run()
	stop()
	os.Exit(code)
}

// A backend service reaches herald's sockets through the Redis it already
// has. The example subscribes where a herald replica would, and prints what
// reaches the channels, with the ids and times that change from run to run
// masked.
func Example() {
	ctx := context.Background()
	redisClient := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer redisClient.Close()
	replica := redisClient.Subscribe(ctx, "user:42", "socket:web-1.abc", "broadcast", "herald:control")
	defer replica.Close()
	for range 4 {
		_, _ = replica.Receive(ctx) // the confirmations of the subscriptions
	}
	socketID, payload := "web-1.abc", []byte(`{"type":"news"}`)

	pub, err := publish.NewPublisher(redisClient, publish.PublisherConfig{Prefix: ""}) // err: nil client
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := pub.NotifyFriendRequest(ctx, "42", publish.Person{ID: "7", Name: "alice"})
	id, err = pub.NotifyGameInvite(ctx, "42", publish.Person{ID: "7", Name: "alice"}, "g-91", time.Now().Add(time.Minute))
	pub.SendToUser(ctx, "42", []byte(`{"type":"status","data":{"online":["7"]}}`))
	pub.SendToSocket(ctx, socketID, payload)
	pub.Broadcast(ctx, payload)
	pub.Disconnect(ctx, "42", "logout") // every socket of 42 closes with 4000

	fmt.Println("last id:", len(id) == 36, err)
	mask := regexp.MustCompile(`("inbox_id":")\d+-\d+|("id":")[0-9a-f-]{36}|("(?:ts|expires_at)":)\d+`)
	for range 6 {
		msg, err := replica.ReceiveMessage(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(msg.Channel, mask.ReplaceAllString(msg.Payload, "$1$2$3…"))
	}
	// Output:
	// last id: true <nil>
	// user:42 {"inbox_id":"…","type":"friend_request","id":"…","ts":…,"data":{"from":{"id":"7","name":"alice"}}}
	// user:42 {"inbox_id":"…","type":"game_invite","id":"…","ts":…,"data":{"from":{"id":"7","name":"alice"},"game_id":"g-91","expires_at":…}}
	// user:42 {"inbox_id":"…","type":"status","data":{"online":["7"]}}
	// socket:web-1.abc {"type":"news"}
	// broadcast {"type":"news"}
	// herald:control {"op":"disconnect","user_id":"42","reason":"logout"}
}
