package redis

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/keyslot"
	"github.com/herald-gw/herald/internal/testenv"
)

// keySlot agrees with the server's CLUSTER KEYSLOT.
func TestKeySlotMatchesRedis(t *testing.T) {
	srv, _ := testenv.StartOneNodeCluster(t)
	admin := srv.Client()
	ch := publish.NewShardedChannels("app:")
	keys := []string{"", "a", "user:{42}", "{}", "x{}y", "{a}{b}", "jti:5f0c1b8e-0d7e-4a57-9c43-3f4c1d2f9a10", "é{ü}"}
	for i := range 200 {
		keys = append(keys, ch.User(strconv.Itoa(i*7919)), "socket:n1."+strconv.Itoa(i))
	}
	for _, k := range keys {
		want, err := admin.ClusterKeySlot(context.Background(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := keyslot.Of(k); got != int(want) {
			t.Errorf("keyslot.Of(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

// With a cluster client, the Publisher sends user and socket messages by
// SPUBLISH on the hash-tagged channel and the rest by PUBLISH, under the
// same names as a RedisCluster broker listens to.
func TestPublisherShardedMode(t *testing.T) {
	testenv.NoLeaks(t)
	_, cc := testenv.StartOneNodeCluster(t)
	b, rec := startClusterBroker(t, cc, Config{RefreshInterval: 100 * time.Millisecond})
	fanouttest.WaitClosed(t, b.Subscribe("42"), 10*time.Second, "42")
	fanouttest.WaitClosed(t, b.SubscribeSocket("n1.abc"), 10*time.Second, "socket n1.abc")
	fanouttest.WaitReady(t, b)
	// A raw sharded subscriber sees what the Publisher sends to the socket.
	raw := cc.SSubscribe(context.Background(), "socket:{n1.abc}")
	defer raw.Close()
	if _, err := raw.Receive(context.Background()); err != nil {
		t.Fatalf("SSUBSCRIBE socket:{n1.abc}: %v", err)
	}

	pub, err := publish.NewPublisher(cc, publish.PublisherConfig{NoInbox: true})
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Channels().Sharded() || pub.Channels().User("42") != "user:{42}" {
		t.Fatalf("publisher names with a cluster client: %q", pub.Channels().User("42"))
	}
	ctx := context.Background()
	if n, err := pub.SendToUser(ctx, "42", []byte("to-user")); err != nil || n != 1 {
		t.Fatalf("SendToUser: %d, %v; want 1 receiver", n, err)
	}
	if _, err := pub.Broadcast(ctx, []byte("to-all")); err != nil {
		t.Fatal(err)
	}
	if n, err := pub.SendToSocket(ctx, "n1.abc", []byte("to-socket")); err != nil || n != 2 {
		t.Fatalf("SendToSocket: %d, %v; want 2 receivers (the broker and the raw SSUBSCRIBE)", n, err)
	}
	if m, err := raw.ReceiveMessage(ctx); err != nil || m.Channel != "socket:{n1.abc}" || m.Payload != "to-socket" {
		t.Fatalf("raw SSUBSCRIBE got %+v, %v", m, err)
	}
	if _, err := pub.Disconnect(ctx, "42", "logout"); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User("42"), "to-user")
	rec.WaitFor(t, publish.All(), "to-all")
	rec.WaitFor(t, publish.Socket("n1.abc"), "to-socket")
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(rec.Controls()) != 1 {
			return fmt.Errorf("controls = %v", rec.Controls())
		}
		return nil
	})
	// The inbox path: the stream and the channel share the user's slot, and
	// the script SPUBLISHes the event with its id.
	inboxPub, err := publish.NewPublisher(cc, publish.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	id, n, err := inboxPub.AppendToUser(ctx, "42", []byte(`{"type":"kept"}`))
	if err != nil || n != 1 {
		t.Fatalf("AppendToUser: %q %d %v; want 1 receiver", id, n, err)
	}
	rec.WaitFor(t, publish.User("42"), `{"inbox_id":"`+id+`","type":"kept"}`)
	if l := cc.XLen(ctx, "inbox:{42}").Val(); l < 1 {
		t.Fatalf("XLEN inbox:{42} = %d", l)
	}
	// A plain PUBLISH on the single-Redis names, or on the sharded ones,
	// reaches nobody here: the classic connection has no socket pattern.
	for _, name := range []string{"user:42", "socket:n1.abc", "socket:{n1.abc}"} {
		if n := cc.Publish(ctx, name, "x").Val(); n != 0 {
			t.Fatalf("PUBLISH %s reached %d subscribers, want 0", name, n)
		}
	}
	// Without its socket's subscription, the broker no longer receives it.
	b.UnsubscribeSocket("n1.abc")
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := cc.SPublish(ctx, "socket:{n1.abc}", "gone").Val(); n != 1 {
			return fmt.Errorf("SPUBLISH socket:{n1.abc} reached %d subscribers, want 1 (the raw one)", n)
		}
		return nil
	})
}

// The broker batches SSUBSCRIBE per slot, confirms every user, counts
// them in the gauge, and drops them after the grace.
func TestRedisClusterSubscriptions(t *testing.T) {
	testenv.NoLeaks(t)
	srv, cc := testenv.StartOneNodeCluster(t)
	reg := prometheus.NewRegistry()
	b, _ := startClusterBroker(t, cc, Config{
		UnsubscribeGrace: 50 * time.Millisecond,
		RefreshInterval:  100 * time.Millisecond,
		Registerer:       reg,
	})
	const users = 600
	chans := make([]<-chan struct{}, users)
	for i := range users {
		chans[i] = b.Subscribe("c" + strconv.Itoa(i))
	}
	for i, ch := range chans {
		fanouttest.WaitClosed(t, ch, 10*time.Second, "c"+strconv.Itoa(i))
	}
	fanouttest.WaitReady(t, b)
	admin := srv.Client()
	ctx := context.Background()
	for _, i := range []int{0, 299, 599} {
		name := "user:{c" + strconv.Itoa(i) + "}"
		if n := admin.PubSubShardNumSub(ctx, name).Val()[name]; n != 1 {
			t.Fatalf("SHARDNUMSUB %s = %d, want 1", name, n)
		}
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if g, _ := fanouttest.MetricValue(t, reg, "herald_broker_subscriptions", "", ""); g != users {
			return fmt.Errorf("herald_broker_subscriptions = %v, want %d", g, users)
		}
		if g, _ := fanouttest.MetricValue(t, reg, "herald_broker_up", "", ""); g != 1 {
			return fmt.Errorf("herald_broker_up = %v", g)
		}
		return nil
	})
	for i := range users {
		b.Unsubscribe("c" + strconv.Itoa(i))
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := len(admin.PubSubShardChannels(ctx, "*").Val()); n != 0 {
			return fmt.Errorf("%d shard channels still subscribed", n)
		}
		return nil
	})
}

// The server drops a user's shard channel (its slot left this master) and
// the slot comes back before the broker sees a change in the map: the
// broker subscribes the user again and resyncs its sockets.
func TestRedisClusterResubscribesDroppedChannel(t *testing.T) {
	testenv.NoLeaks(t)
	srv, cc := testenv.StartOneNodeCluster(t)
	b, rec := startClusterBroker(t, cc, Config{RefreshInterval: 100 * time.Millisecond})
	fanouttest.WaitClosed(t, b.Subscribe("42"), 10*time.Second, "42")
	fanouttest.WaitClosed(t, b.Subscribe("43"), 10*time.Second, "43")
	admin := srv.Client()
	ctx := context.Background()
	slot := keyslot.Of("user:{42}")
	if keyslot.Of("user:{43}") == slot {
		t.Fatal("test users share a slot")
	}
	numsub := func(ch string) int64 { return admin.PubSubShardNumSub(ctx, ch).Val()[ch] }

	// Without the slot, Redis drops user:{42}; with it back, herald must
	// subscribe again.
	if err := admin.Do(ctx, "cluster", "delslots", slot).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := numsub("user:{42}"); n != 0 {
			return fmt.Errorf("SHARDNUMSUB user:{42} = %d after DELSLOTS", n)
		}
		return nil
	})
	if err := admin.Do(ctx, "cluster", "addslots", slot).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := numsub("user:{42}"); n != 1 {
			return fmt.Errorf("SHARDNUMSUB user:{42} = %d, want 1 again", n)
		}
		if !rec.Has(publish.User("42"), resyncPayload) {
			return fmt.Errorf("no resync for user 42")
		}
		return nil
	})
	if rec.Has(publish.User("43"), resyncPayload) {
		t.Error("user 43, whose slot never moved, got a resync")
	}
	if n := numsub("user:{43}"); n != 1 {
		t.Errorf("SHARDNUMSUB user:{43} = %d, want 1", n)
	}
	if err := cc.SPublish(ctx, "user:{42}", "after").Err(); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, publish.User("42"), "after")
}

// afterMove does each moved channel as soon as its subscription is ready:
// one whose subscription never comes (its new master is down) holds back
// neither the resyncs nor the waiting Subscribe calls of the others; one
// unsubscribed meanwhile gets no resync; one never active gets none either.
func TestRedisClusterAfterMoveIndependent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &fanouttest.Recorder{}
	r := &Cluster{ctx: ctx, ch: publish.NewShardedChannels(""), h: rec, chans: map[int]map[string]*clusterChan{}}
	mk := func(name string, resync bool) (movedChan, chan struct{}) {
		c := &clusterChan{refs: 1}
		r.chans[keyslot.Of(name)] = map[string]*clusterChan{name: c}
		ready := make(chan struct{})
		return movedChan{channel: name, c: c, ready: ready, resync: resync, waiting: make(chan struct{})}, ready
	}
	stuck, _ := mk("socket:{n1.stuck}", true)
	first, firstReady := mk("socket:{n1.first}", true)
	later, laterReady := mk("user:{later}", true)
	gone, goneReady := mk("socket:{n1.gone}", true)
	fresh, freshReady := mk("socket:{n1.fresh}", false)
	delete(r.chans, keyslot.Of(gone.channel)) // unsubscribed: its ready closed by the drop
	close(firstReady)
	close(goneReady)
	close(freshReady)
	r.loops.Add(1)
	go r.afterMove([]movedChan{stuck, first, later, gone, fresh})

	testenv.Eventually(t, 5*time.Second, func() error {
		if !rec.Has(publish.Socket("n1.first"), resyncPayload) || !fanouttest.IsClosed(first.waiting) {
			return fmt.Errorf("first: resync %v, released %v", rec.Has(publish.Socket("n1.first"), resyncPayload), fanouttest.IsClosed(first.waiting))
		}
		return nil
	})
	close(laterReady)
	testenv.Eventually(t, 5*time.Second, func() error {
		if !rec.Has(publish.User("later"), resyncPayload) || !fanouttest.IsClosed(later.waiting) {
			return fmt.Errorf("later: resync %v, released %v", rec.Has(publish.User("later"), resyncPayload), fanouttest.IsClosed(later.waiting))
		}
		return nil
	})
	if !fanouttest.IsClosed(gone.waiting) || !fanouttest.IsClosed(fresh.waiting) {
		t.Errorf("released: gone %v, fresh %v; want both", fanouttest.IsClosed(gone.waiting), fanouttest.IsClosed(fresh.waiting))
	}
	if rec.Has(publish.Socket("n1.gone"), resyncPayload) || rec.Has(publish.Socket("n1.fresh"), resyncPayload) || rec.Has(publish.Socket("n1.stuck"), resyncPayload) {
		t.Error("resync for an unsubscribed, never active or unconfirmed channel")
	}
	if fanouttest.IsClosed(stuck.waiting) {
		t.Error("a channel whose subscription never came was released")
	}
	cancel()
	r.loops.Wait()
}

// startClusterBroker starts a RedisCluster broker on cc, node "n1" unless
// cfg names one, logging to the test, delivering to the returned recorder;
// it is closed when the test ends.
func startClusterBroker(t *testing.T, cc *redis.ClusterClient, cfg Config) (*Cluster, *fanouttest.Recorder) {
	t.Helper()
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	cfg.Logger = testLogger(t)
	b, err := NewCluster(cc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &fanouttest.Recorder{}
	if err := b.Start(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, rec
}
