package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// Once Subscribe's channel is closed, a PUBLISH reaches the replica: Redis
// counts it as a receiver, and the message arrives.
func TestRedisSubscribeConfirmedThenDelivered(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	b, rec := startBroker(t, srv.Client(), Config{})
	fanouttest.WaitReady(t, b)
	pub := srv.Client()
	ctx := context.Background()

	for i := range 300 {
		user := "u" + strconv.Itoa(i)
		fanouttest.WaitClosed(t, b.Subscribe(user), 5*time.Second, user)
		n, err := pub.Publish(ctx, "user:"+user, "m"+strconv.Itoa(i)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%s: PUBLISH right after confirmation reached %d subscribers, want 1", user, n)
		}
	}
	for i := range 300 {
		rec.WaitFor(t, publish.User("u"+strconv.Itoa(i)), "m"+strconv.Itoa(i))
	}
}

// SUBSCRIBE, UNSUBSCRIBE and SUBSCRIBE of one user in quick succession, with
// neither grace nor gathering: the channel closes only when the last
// SUBSCRIBE is active.
func TestRedisResubscribeInFlight(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	b, _ := startBroker(t, srv.Client(), Config{UnsubscribeGrace: -1, FlushInterval: -1})
	fanouttest.WaitReady(t, b)
	pub := srv.Client()
	ctx := context.Background()

	for i := range 200 {
		user := "flip" + strconv.Itoa(i%3)
		b.Subscribe(user)
		if i%2 == 0 {
			time.Sleep(time.Duration(i%5) * 100 * time.Microsecond) // vary the interleaving
		}
		b.Unsubscribe(user)
		ch := b.Subscribe(user)
		fanouttest.WaitClosed(t, ch, 5*time.Second, user)
		if n := pub.Publish(ctx, "user:"+user, "x").Val(); n != 1 {
			t.Fatalf("round %d: PUBLISH after confirmation reached %d subscribers, want 1", i, n)
		}
		b.Unsubscribe(user)
	}
}

func TestRedisRouting(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	b1, rec1 := startBroker(t, srv.Client(), Config{NodeID: "n1"})
	b2, rec2 := startBroker(t, srv.Client(), Config{NodeID: "n2"})
	fanouttest.WaitReady(t, b1)
	fanouttest.WaitReady(t, b2)
	fanouttest.WaitClosed(t, b1.Subscribe("both"), 5*time.Second, "both@n1")
	fanouttest.WaitClosed(t, b2.Subscribe("both"), 5*time.Second, "both@n2")
	fanouttest.WaitClosed(t, b1.Subscribe("only1"), 5*time.Second, "only1")
	pub := srv.Client()
	ctx := context.Background()

	raw := func(channel, payload string) {
		t.Helper()
		if err := pub.Publish(ctx, channel, payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	raw("user:both", "to both")
	raw("user:only1", "to only1")
	raw("user:nobody", "to nobody")
	raw("socket:n1.abc", "to n1 socket")
	raw("socket:n2.abc", "to n2 socket")
	raw("socket:n1x.abc", "to n1x socket") // another node whose id starts with n1
	raw("broadcast", "to all")
	raw("broadcast:except:7", "to all but 7")
	raw("herald:control", `{"op":"disconnect","user_id":"42","reason":"logout"}`)
	// Published through a broker: the same path.
	if err := b2.Publish(ctx, publish.User("only1"), []byte("via b2")); err != nil {
		t.Fatal(err)
	}
	if err := b2.PublishControl(ctx, publish.Control{Op: publish.OpDisconnect, UserID: "43"}); err != nil {
		t.Fatal(err)
	}
	// A marker published last: once both have it, everything before arrived.
	raw("broadcast", "end")
	rec1.WaitFor(t, publish.All(), "end")
	rec2.WaitFor(t, publish.All(), "end")

	tests := []struct {
		name     string
		rec      *fanouttest.Recorder
		to       publish.Target
		payload  string
		received bool
	}{
		{"user on n1", rec1, publish.User("both"), "to both", true},
		{"user on n2", rec2, publish.User("both"), "to both", true},
		{"only1 on n1", rec1, publish.User("only1"), "to only1", true},
		{"only1 not on n2", rec2, publish.User("only1"), "to only1", false},
		{"via broker", rec1, publish.User("only1"), "via b2", true},
		{"nobody on n1", rec1, publish.User("nobody"), "to nobody", false},
		{"nobody on n2", rec2, publish.User("nobody"), "to nobody", false},
		{"own socket n1", rec1, publish.Socket("n1.abc"), "to n1 socket", true},
		{"other socket not on n1", rec1, publish.Socket("n2.abc"), "to n2 socket", false},
		{"own socket n2", rec2, publish.Socket("n2.abc"), "to n2 socket", true},
		{"other socket not on n2", rec2, publish.Socket("n1.abc"), "to n1 socket", false},
		{"prefix node not on n1", rec1, publish.Socket("n1x.abc"), "to n1x socket", false},
		{"broadcast n1", rec1, publish.All(), "to all", true},
		{"broadcast n2", rec2, publish.All(), "to all", true},
		{"except n1", rec1, publish.AllExcept("7"), "to all but 7", true},
		{"except n2", rec2, publish.AllExcept("7"), "to all but 7", true},
	}
	for _, tt := range tests {
		if got := tt.rec.Has(tt.to, tt.payload); got != tt.received {
			t.Errorf("%s: received %v, want %v", tt.name, got, tt.received)
		}
	}
	want := []publish.Control{{Op: publish.OpDisconnect, UserID: "42", Reason: "logout"}, {Op: publish.OpDisconnect, UserID: "43"}}
	for i, rec := range []*fanouttest.Recorder{rec1, rec2} {
		if got := rec.Controls(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("n%d controls = %+v, want %+v", i+1, got, want)
		}
	}
}

// TestRedisUnsubscribeGrace: an Unsubscribe leaves the channel for the
// grace; a Subscribe within it keeps the channel without a command. That
// nothing was sent for the cancelled ones is seen through a marker whose
// grace began after theirs and ends later: once the marker's UNSUBSCRIBE
// went out, after its grace, theirs would have gone before it.
func TestRedisUnsubscribeGrace(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	const grace = time.Second
	b, _ := startBroker(t, srv.Client(), Config{UnsubscribeGrace: grace})
	fanouttest.WaitReady(t, b)
	admin := srv.Client()

	fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")
	fanouttest.WaitClosed(t, b.Subscribe("marker"), 5*time.Second, "marker")
	if n := numSub(t, admin, "user:42")["user:42"]; n != 1 {
		t.Fatalf("NUMSUB while subscribed = %d, want 1", n)
	}

	// Within the grace, a new Subscribe keeps the channel: no UNSUBSCRIBE.
	for range 3 {
		b.Unsubscribe("42")
		if ch := b.Subscribe("42"); !fanouttest.IsClosed(ch) {
			t.Fatal("Subscribe within the grace returned an open channel")
		}
	}
	start := time.Now()
	b.Unsubscribe("marker")
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := numSub(t, admin, "user:marker")["user:marker"]; n != 0 {
			return fmt.Errorf("marker: NUMSUB = %d, want 0", n)
		}
		return nil
	})
	if d := time.Since(start); d < grace {
		t.Fatalf("unsubscribed after %s, before the grace of %s", d, grace)
	}
	if n := numSub(t, admin, "user:42")["user:42"]; n != 1 {
		t.Fatalf("NUMSUB after resubscribing within the grace = %d, want 1", n)
	}
	if n := commandCalls(t, admin, "unsubscribe"); n != 1 {
		t.Fatalf("%d UNSUBSCRIBE commands sent, want 1 (the marker's)", n)
	}

	// And a Subscribe brings the marker back.
	fanouttest.WaitClosed(t, b.Subscribe("marker"), 5*time.Second, "marker again")
	if n := numSub(t, admin, "user:marker")["user:marker"]; n != 1 {
		t.Fatalf("NUMSUB after a new Subscribe = %d, want 1", n)
	}
}

func TestRedisBatching(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	admin := srv.Client()
	b, _ := startBroker(t, srv.Client(), Config{UnsubscribeGrace: -1})
	fanouttest.WaitReady(t, b)
	before := commandCalls(t, admin, "subscribe")

	const users = 2000
	chans := make([]<-chan struct{}, users)
	names := make([]string, users)
	for i := range users {
		names[i] = "user:b" + strconv.Itoa(i)
		chans[i] = b.Subscribe("b" + strconv.Itoa(i))
	}
	for i, ch := range chans {
		fanouttest.WaitClosed(t, ch, 10*time.Second, names[i])
	}
	subs := commandCalls(t, admin, "subscribe") - before
	t.Logf("%d users subscribed with %d SUBSCRIBE commands", users, subs)
	if subs > users/100 {
		t.Fatalf("%d SUBSCRIBE commands for %d users, want at most %d", subs, users, users/100)
	}
	for name, n := range numSub(t, admin, names...) {
		if n != 1 {
			t.Fatalf("NUMSUB %s = %d, want 1", name, n)
		}
	}

	for i := range users {
		b.Unsubscribe("b" + strconv.Itoa(i))
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		for name, n := range numSub(t, admin, names...) {
			if n != 0 {
				return fmt.Errorf("NUMSUB %s = %d", name, n)
			}
		}
		return nil
	})
	unsubs := commandCalls(t, admin, "unsubscribe")
	t.Logf("%d users unsubscribed with %d UNSUBSCRIBE commands", users, unsubs)
	if unsubs > users/100 {
		t.Fatalf("%d UNSUBSCRIBE commands for %d users, want at most %d", unsubs, users, users/100)
	}
}

// 20,000 messages published as fast as Redis takes them all arrive, in order.
func TestRedisNoDrops(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	b, rec := startBroker(t, srv.Client(), Config{})
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")
	pub := srv.Client()
	ctx := context.Background()

	const total, batch = 20000, 1000
	for start := 0; start < total; start += batch {
		p := pub.Pipeline()
		for i := start; i < start+batch; i++ {
			p.Publish(ctx, "user:42", strconv.Itoa(i))
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		if n := rec.Count(); n < total {
			return fmt.Errorf("%d of %d messages delivered", n, total)
		}
		return nil
	})
	got := rec.Payloads(publish.User("42"))
	if len(got) != total {
		t.Fatalf("%d messages delivered, want %d", len(got), total)
	}
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: out of order or lost", i, p)
		}
	}
}

func TestRedisPrefix(t *testing.T) {
	tests := []struct {
		name, prefix, lookalike string
	}{
		{"plain", "app1:", "app2:"},
		// Unescaped, the pattern "t[1]*:socket:n1.*" would match "t1x:…".
		{"glob characters", "t[1]*:", "t1x:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.NoLeaks(t)
			srv := testenv.StartRedis(t)
			admin := srv.Client()
			ctx := context.Background()
			b, rec := startBroker(t, srv.Client(), Config{Prefix: tt.prefix})
			fanouttest.WaitReady(t, b)
			fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")

			channels, err := admin.PubSubChannels(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(channels) != 3 {
				t.Fatalf("channels = %q, want 3", channels)
			}
			for _, c := range channels {
				if !strings.HasPrefix(c, tt.prefix) {
					t.Fatalf("channel %q lacks the prefix %q", c, tt.prefix)
				}
			}
			for _, other := range []string{"", tt.lookalike} {
				for _, name := range []string{"user:42", "socket:n1.s", "broadcast", "broadcast:except:1", "herald:control"} {
					payload := name
					if name == "herald:control" {
						payload = `{"op":"disconnect","user_id":"42"}`
					}
					if err := admin.Publish(ctx, other+name, payload).Err(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, name := range []string{"user:42", "socket:n1.s", "broadcast", "broadcast:except:1"} {
				if err := admin.Publish(ctx, tt.prefix+name, "prefixed "+name).Err(); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Publish(ctx, publish.Socket("n1.t"), []byte("via broker")); err != nil {
				t.Fatal(err)
			}
			if err := b.PublishControl(ctx, publish.Control{Op: publish.OpDisconnect, UserID: "7"}); err != nil {
				t.Fatal(err)
			}
			rec.WaitFor(t, publish.Socket("n1.t"), "via broker")
			testenv.Eventually(t, 5*time.Second, func() error {
				if len(rec.Controls()) == 0 {
					return errors.New("no control")
				}
				return nil
			})
			want := map[publish.Target]string{
				publish.User("42"):     "prefixed user:42",
				publish.Socket("n1.s"): "prefixed socket:n1.s",
				publish.All():          "prefixed broadcast",
				publish.AllExcept("1"): "prefixed broadcast:except:1",
				publish.Socket("n1.t"): "via broker",
			}
			msgs, controls := rec.Messages(), rec.Controls()
			if len(msgs) != len(want) {
				t.Fatalf("delivered %+v, want exactly %v", msgs, want)
			}
			for _, m := range msgs {
				if want[m.To] != m.Payload {
					t.Errorf("delivered %q to %+v, want %q", m.Payload, m.To, want[m.To])
				}
			}
			if len(controls) != 1 || controls[0].UserID != "7" {
				t.Errorf("controls = %+v, want only the prefixed one for 7", controls)
			}
		})
	}
}

// The broker works over RESP2 and RESP3 connections, and with the client
// options cmd/herald uses.
func TestRedisProtocols(t *testing.T) {
	tests := []struct {
		name string
		opts redis.Options
	}{
		{"RESP2", redis.Options{Protocol: 2}},
		{"RESP3", redis.Options{Protocol: 3}},
		{"context timeouts", redis.Options{ContextTimeoutEnabled: true, MaxRetries: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testenv.NoLeaks(t)
			srv := testenv.StartRedis(t)
			opts := tt.opts
			opts.Addr = srv.Addr()
			client := redis.NewClient(&opts)
			t.Cleanup(func() { client.Close() })
			b, rec := startBroker(t, client, Config{HealthInterval: 50 * time.Millisecond})
			fanouttest.WaitReady(t, b)
			fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")
			if err := b.Publish(context.Background(), publish.User("42"), []byte("hi")); err != nil {
				t.Fatal(err)
			}
			rec.WaitFor(t, publish.User("42"), "hi")
			// The health PINGs are answered and recognised.
			testenv.Eventually(t, 5*time.Second, func() error {
				if n := b.s.pongs.Load(); n < 3 {
					return fmt.Errorf("%d PINGs answered", n)
				}
				return nil
			})
		})
	}
}

func TestRedisClose(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	b, rec := startBroker(t, srv.Client(), Config{})
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if b.Ready() {
		t.Fatal("ready after Close")
	}
	n := rec.Count()
	admin := srv.Client()
	ctx := context.Background()
	if got := admin.Publish(ctx, "user:42", "late").Val(); got != 0 {
		t.Fatalf("PUBLISH after Close reached %d subscribers", got)
	}
	if err := b.Publish(ctx, publish.User("42"), []byte("x")); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.PublishControl(ctx, publish.Control{Op: publish.OpDisconnect, UserID: "1"}); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("PublishControl after Close = %v, want ErrClosed", err)
	}
	if ch := b.Subscribe("43"); !fanouttest.IsClosed(ch) {
		t.Fatal("Subscribe after Close returned an open channel")
	}
	b.Unsubscribe("42")
	if err := b.Start(rec); !errors.Is(err, fanout.ErrClosed) {
		t.Fatalf("Start after Close = %v", err)
	}
	if rec.Count() != n {
		t.Fatal("delivered after Close")
	}
}

func TestRedisDroppedMessages(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	reg := prometheus.NewRegistry()
	b, rec := startBroker(t, srv.Client(), Config{Registerer: reg})
	for _, r := range fanout.DropReasons {
		if v, ok := fanouttest.MetricValue(t, reg, "herald_broker_dropped_total", "reason", r); !ok || v != 0 {
			t.Fatalf("dropped{reason=%q} = %v, %v before anything; want 0, present", r, v, ok)
		}
	}
	fanouttest.WaitReady(t, b)
	admin := srv.Client()
	ctx := context.Background()
	for _, payload := range []string{`not json`, `{"op":"disconnect"}`, `{"op":"explode","user_id":"1"}`, `{"op":"disconnect","user_id":"9"}`} {
		if err := admin.Publish(ctx, "herald:control", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(rec.Controls()) == 0 {
			return errors.New("valid control not delivered")
		}
		return nil
	})
	// bad_channel cannot come from a subscription; feed one in directly.
	b.s.dispatch([]byte("user:"), []byte("x"))
	checks := map[string]float64{fanout.DropBadControl: 2, fanout.DropUnknownOp: 1, fanout.DropBadChannel: 1}
	for reason, want := range checks {
		if v, _ := fanouttest.MetricValue(t, reg, "herald_broker_dropped_total", "reason", reason); v != want {
			t.Errorf("dropped{reason=%q} = %v, want %v", reason, v, want)
		}
	}
	if v, _ := fanouttest.MetricValue(t, reg, "herald_broker_messages_total", "kind", "control"); v != 1 {
		t.Errorf("messages{kind=control} = %v, want 1", v)
	}
	if got := rec.Controls(); len(got) != 1 || got[0].UserID != "9" {
		t.Errorf("controls = %+v", got)
	}
	for _, bad := range []publish.Control{{Op: "explode", UserID: "1"}, {Op: publish.OpDisconnect}} {
		if err := b.PublishControl(ctx, bad); !errors.Is(err, publish.ErrInvalidControl) {
			t.Errorf("PublishControl(%+v) = %v, want ErrInvalidControl", bad, err)
		}
	}
	if err := b.Publish(ctx, publish.Socket(""), nil); !errors.Is(err, publish.ErrInvalidTarget) {
		t.Errorf("Publish to an empty socket id = %v, want ErrInvalidTarget", err)
	}
}

func TestRedisConfig(t *testing.T) {
	testenv.NoLeaks(t)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"minimal", Config{NodeID: "n1"}, true},
		{"no node id", Config{}, false},
		{"node id with a dot", Config{NodeID: "a.b"}, false},
		{"node id with a glob", Config{NodeID: "a*"}, false},
		{"negative batch", Config{NodeID: "n1", BatchSize: -1}, false},
		{"negative health", Config{NodeID: "n1", HealthInterval: -time.Second}, false},
		{"min over max", Config{NodeID: "n1", ReconnectMin: time.Minute}, false},
		{"negative grace and flush", Config{NodeID: "n1", UnsubscribeGrace: -1, FlushInterval: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(client, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewRedis error = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				b.Close()
			}
		})
	}
	b, err := New(client, Config{NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := Config{NodeID: "n1", UnsubscribeGrace: 2 * time.Second, BatchSize: 500, FlushInterval: 2 * time.Millisecond,
		HealthInterval: 5 * time.Second, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second, RefreshInterval: time.Second}
	got := b.s.cfg
	got.Logger = nil
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
	if _, err := New(nil, Config{NodeID: "n1"}); err == nil {
		t.Fatal("NewRedis(nil) succeeded")
	}
	if err := b.Start(nil); err == nil {
		t.Fatal("Start(nil) succeeded")
	}
}

// Publisher → Redis → Redis broker → Handler, with a prefix.
func TestPublisherToBroker(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	const prefix = "herald-test:"
	b, rec := startBroker(t, srv.Client(), Config{Prefix: prefix, NodeID: "web-1"})
	fanouttest.WaitReady(t, b)
	fanouttest.WaitClosed(t, b.Subscribe("42"), 5*time.Second, "42")
	p, err := publish.NewPublisher(srv.Client(), publish.PublisherConfig{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	id, err := p.NotifyFriendRequest(ctx, "42", publish.Person{ID: "7", Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	sends := []func() (int64, error){
		func() (int64, error) { return p.SendToSocket(ctx, "web-1.abc", []byte("socket")) },
		func() (int64, error) { return p.Broadcast(ctx, []byte("all")) },
		func() (int64, error) { return p.BroadcastExcept(ctx, "42", []byte("all but 42")) },
		func() (int64, error) { return p.Disconnect(ctx, "42", "ban") },
	}
	for i, send := range sends {
		if n, err := send(); n != 1 || err != nil {
			t.Fatalf("send %d = %d, %v; want 1 receiver", i, n, err)
		}
	}
	// Nobody holds user 43 or node web-2's sockets.
	if n, _ := p.SendToUser(ctx, "43", []byte("{}")); n != 0 {
		t.Fatalf("SendToUser 43 reached %d replicas", n)
	}
	if n, _ := p.SendToSocket(ctx, "web-2.abc", []byte("x")); n != 0 {
		t.Fatalf("SendToSocket web-2.abc reached %d replicas", n)
	}

	rec.WaitFor(t, publish.Socket("web-1.abc"), "socket")
	rec.WaitFor(t, publish.All(), "all")
	rec.WaitFor(t, publish.AllExcept("42"), "all but 42")
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(rec.Controls()) == 0 {
			return errors.New("no control")
		}
		return nil
	})
	if got := rec.Controls(); got[0] != (publish.Control{Op: publish.OpDisconnect, UserID: "42", Reason: "ban"}) {
		t.Fatalf("control = %+v", got[0])
	}
	got := rec.Payloads(publish.User("42"))
	if len(got) != 1 || !strings.Contains(got[0], `"id":"`+id+`"`) {
		t.Fatalf("user 42 got %q, want the friend request %s", got, id)
	}
}
