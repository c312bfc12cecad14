package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// inboxFrame is what the tests read from a frame of an inbox socket.
type inboxFrame struct {
	Type    string `json:"type"`
	InboxID string `json:"inbox_id"`
	Count   int    `json:"count"`
	N       int    `json:"n"`
	raw     string
}

func readInboxFrame(t *testing.T, c *testenv.WSClient, name string) inboxFrame {
	t.Helper()
	msg, err := c.ReadText(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var f inboxFrame
	if err := json.Unmarshal([]byte(msg), &f); err != nil {
		t.Fatalf("%s: frame %q is not JSON: %v", name, msg, err)
	}
	f.raw = msg
	return f
}

// expectNothingBeforeEvent appends a marker event for user and reads c's
// next frame, which must be that event: a catch-up or live event sent
// twice, or too late, would come before it.
func expectNothingBeforeEvent(t *testing.T, c *testenv.WSClient, publish func(t *testing.T, user, payload string) string, user, name string) {
	t.Helper()
	id := publish(t, user, `{"type":"marker"}`)
	if f := readInboxFrame(t, c, name+": the marker"); f.Type != "marker" || f.InboxID != id {
		t.Errorf("%s received %s before the marker %s, want nothing", name, f.raw, id)
	}
}

// inboxEnv is one gateway with an inbox, and how to publish to it.
type inboxEnv struct {
	h       *harness
	inbox   inbox.Inbox
	publish func(t *testing.T, user, payload string) string // returns the inbox id
	// unsubscribed reports whether the broker has let go of user's channel
	// (after the unsubscribe grace); nil when the broker has no such state.
	unsubscribed func(user string) error
}

type inboxVariant func(t *testing.T, cfg publish.InboxConfig, wrap func(inbox.Inbox) inbox.Inbox) inboxEnv

// inboxVariants are the embedded mode (memory broker and inbox) and one
// replica on a real Redis.
func inboxVariants() map[string]inboxVariant {
	return map[string]inboxVariant{
		"memory": func(t *testing.T, cfg publish.InboxConfig, wrap func(inbox.Inbox) inbox.Inbox) inboxEnv {
			b := fanout.NewMemory(fanout.MemoryConfig{})
			mi, err := inbox.NewMemory(b, inbox.MemoryConfig{InboxConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { mi.Close() })
			var in inbox.Inbox = mi
			if wrap != nil {
				in = wrap(mi)
			}
			h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.Inbox = in }})
			return inboxEnv{h: h, inbox: mi, publish: func(t *testing.T, user, payload string) string {
				t.Helper()
				id, err := mi.Append(context.Background(), user, []byte(payload))
				if err != nil {
					t.Fatalf("append: %v", err)
				}
				return id
			}}
		},
		"redis": func(t *testing.T, cfg publish.InboxConfig, wrap func(inbox.Inbox) inbox.Inbox) inboxEnv {
			r := testenv.StartRedis(t)
			return redisInboxReplica(t, r, "a", cfg, wrap)
		},
	}
}

// redisInboxReplica is startReplica with a Redis inbox, and a Publisher.
func redisInboxReplica(t *testing.T, r *testenv.Redis, node string, cfg publish.InboxConfig, wrap func(inbox.Inbox) inbox.Inbox) inboxEnv {
	t.Helper()
	ri, err := inbox.NewRedis(r.Client(), inbox.RedisConfig{InboxConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var in inbox.Inbox = ri
	if wrap != nil {
		in = wrap(ri)
	}
	h := startReplica(t, r, node, func(c *gateway.Config) { c.Inbox = in })
	pub := must(publish.NewPublisher(r.Client(), publish.PublisherConfig{Inbox: cfg}))
	return inboxEnv{h: h, inbox: ri, publish: func(t *testing.T, user, payload string) string {
		t.Helper()
		id, _, err := pub.AppendToUser(context.Background(), user, []byte(payload))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		return id
	}, unsubscribed: func(user string) error {
		if n := numsub(t, r.Client(), "user:"+user)["user:"+user]; n != 0 {
			return fmt.Errorf("user:%s has %d subscribers", user, n)
		}
		return nil
	}}
}

// connectSince opens a socket for user with since (none when empty) and
// returns it with its welcome.
func (h *harness) connectSince(user, since string, withSince bool) (*testenv.WSClient, inboxFrame) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := h.ws + "?token=" + url.QueryEscape(h.token(user))
	if withSince {
		u += "&since=" + url.QueryEscape(since)
	}
	c, err := testenv.DialWS(ctx, u, nil)
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	h.t.Cleanup(func() { c.Close() })
	t := h.t.(*testing.T)
	w := readInboxFrame(t, c, "welcome")
	if w.Type != "welcome" {
		t.Fatalf("first frame = %s, want the welcome", w.raw)
	}
	return c, w
}

// waitGone waits until user has no socket on h.
func waitGone(t *testing.T, h *harness, user string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		if n := len(h.srv.UserSockets(user)); n != 0 {
			return fmt.Errorf("%d sockets of %s left", n, user)
		}
		return nil
	})
}

// TestInboxCatchUpAfterOffline: a user whose sockets are all closed, long
// enough for the replica to drop the user's channel, while 20 events are
// published, reconnects with since and gets all 20 exactly once, in order,
// then the marker, then live events.
func TestInboxCatchUpAfterOffline(t *testing.T) {
	testenv.NoLeaks(t)
	for name, variant := range inboxVariants() {
		t.Run(name, func(t *testing.T) {
			env := variant(t, publish.InboxConfig{}, nil)
			h := env.h
			c, w := h.connectSince("u", "", false)
			if _, ok := inbox.ParseStreamID(w.InboxID); !ok {
				t.Fatalf("welcome %s carries no inbox id", w.raw)
			}
			first := env.publish(t, "u", `{"type":"note","n":-1}`)
			if f := readInboxFrame(t, c, "live"); f.InboxID != first || f.raw != `{"inbox_id":"`+first+`","type":"note","n":-1}` {
				t.Fatalf("live frame = %s, want id %s", f.raw, first)
			}
			last := first
			c.Close()
			waitGone(t, h, "u")

			// 20 events while the user has no socket, the first ones
			// before the replica let go of the user's channel, the others
			// after.
			var ids []string
			for i := range 20 {
				if i == 10 && env.unsubscribed != nil {
					testenv.Eventually(t, 10*time.Second, func() error { return env.unsubscribed("u") })
				}
				ids = append(ids, env.publish(t, "u", fmt.Sprintf(`{"type":"note","n":%d}`, i)))
			}

			c, w = h.connectSince("u", last, true)
			if w.InboxID != "" {
				t.Fatalf("welcome with since = %s, want no inbox id (the marker carries it)", w.raw)
			}
			for i := range 20 {
				f := readInboxFrame(t, c, fmt.Sprintf("replayed %d", i))
				want := fmt.Sprintf(`{"inbox_id":"%s","type":"note","n":%d}`, ids[i], i)
				if f.raw != want {
					t.Fatalf("replayed frame %d = %s, want %s", i, f.raw, want)
				}
			}
			m := readInboxFrame(t, c, "marker")
			if m.Type != "replay_complete" || m.Count != 20 || m.InboxID != ids[19] {
				t.Fatalf("marker = %s, want replay_complete, count 20, inbox_id %s", m.raw, ids[19])
			}
			live := env.publish(t, "u", `{"type":"note","n":20}`)
			if f := readInboxFrame(t, c, "live after replay"); f.InboxID != live || f.N != 20 {
				t.Fatalf("after the replay got %s, want the live event %s", f.raw, live)
			}
			expectNothingBeforeEvent(t, c, env.publish, "u", "after the live event")
			if got := h.metric(`herald_inbox_replayed_events_total`); got != 20 {
				t.Fatalf("herald_inbox_replayed_events_total = %v, want 20", got)
			}
		})
	}
}

// racingInbox publishes events while a handshake reads the inbox: before
// the read (so that they are both in the read and on their way live) and
// after it (so that they arrive while the catch-up is being queued).
type racingInbox struct {
	inbox.Inbox
	mu      sync.Mutex
	publish func(phase string) // called under mu, before and after each Read
	armed   bool               // guarded by mu
}

func (r *racingInbox) Read(ctx context.Context, user, since string) (inbox.Result, error) {
	r.mu.Lock()
	armed := r.armed
	r.mu.Unlock()
	if armed {
		r.publish("before")
	}
	rd, err := r.Inbox.Read(ctx, user, since)
	if armed {
		r.publish("after")
	}
	return rd, err
}

// laggyBroker is a memory broker whose user messages arrive late, in
// order, as Redis pub/sub messages may: an event published before the
// inbox read can reach the gateway after the read returned.
type laggyBroker struct {
	*fanout.Memory
	lag   time.Duration
	queue chan laggyMsg
	done  chan struct{}
}

type laggyMsg struct {
	to      publish.Target
	payload []byte
}

func newLaggyBroker(lag time.Duration) *laggyBroker {
	b := &laggyBroker{Memory: fanout.NewMemory(fanout.MemoryConfig{}), lag: lag,
		queue: make(chan laggyMsg, 1024), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for m := range b.queue {
			time.Sleep(b.lag) // the simulated transit; FIFO like one pub/sub connection
			_ = b.Memory.Publish(context.Background(), m.to, m.payload)
		}
	}()
	return b
}

func (b *laggyBroker) Publish(ctx context.Context, to publish.Target, payload []byte) error {
	if to.Kind != publish.ToUser {
		return b.Memory.Publish(ctx, to, payload)
	}
	b.queue <- laggyMsg{to, bytes.Clone(payload)}
	return nil
}

func (b *laggyBroker) Close() error {
	select {
	case <-b.done:
	default:
		close(b.queue)
		<-b.done
	}
	return b.Memory.Close()
}

// TestInboxPublishDuringCatchUp: events published while a reconnecting
// socket's catch-up is read and queued are neither duplicated nor lost.
func TestInboxPublishDuringCatchUp(t *testing.T) {
	testenv.NoLeaks(t)
	variants := inboxVariants()
	variants["lagging delivery"] = func(t *testing.T, cfg publish.InboxConfig, wrap func(inbox.Inbox) inbox.Inbox) inboxEnv {
		b := newLaggyBroker(20 * time.Millisecond)
		mi, err := inbox.NewMemory(b, inbox.MemoryConfig{InboxConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { mi.Close() })
		h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.Inbox = wrap(mi) }})
		return inboxEnv{h: h, inbox: mi, publish: func(t *testing.T, user, payload string) string {
			t.Helper()
			id, err := mi.Append(context.Background(), user, []byte(payload))
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			return id
		}}
	}
	for name, variant := range variants {
		t.Run(name, func(t *testing.T) {
			var race *racingInbox
			env := variant(t, publish.InboxConfig{}, func(in inbox.Inbox) inbox.Inbox {
				race = &racingInbox{Inbox: in}
				return race
			})
			h := env.h
			var (
				mu   sync.Mutex
				want []string // every event's frame, in publish order
				n    int
			)
			pub := func(count int) {
				for range count {
					mu.Lock()
					n++
					i := n
					mu.Unlock()
					id := env.publish(t, "u", fmt.Sprintf(`{"n":%d}`, i))
					mu.Lock()
					want = append(want, fmt.Sprintf(`{"inbox_id":"%s","n":%d}`, id, i))
					mu.Unlock()
				}
			}
			race.publish = func(string) { pub(5) }

			c, w := h.connectSince("u", "", false) // not armed: a plain connect
			since := w.InboxID
			c.Close()
			waitGone(t, h, "u")
			pub(10) // missed while offline

			race.mu.Lock()
			race.armed = true
			race.mu.Unlock()
			c, _ = h.connectSince("u", since, true)
			race.mu.Lock()
			race.armed = false
			race.mu.Unlock()

			// 10 offline + 5 before the read: caught up; then the marker;
			// then the 5 published after the read, live.
			var got []string
			for len(got) < 20 {
				f := readInboxFrame(t, c, fmt.Sprintf("frame %d", len(got)))
				if f.Type == "replay_complete" {
					if len(got) != 15 || f.Count != 15 {
						t.Fatalf("marker %s after %d events, want after 15 with count 15", f.raw, len(got))
					}
					continue
				}
				got = append(got, f.raw)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			expectNothingBeforeEvent(t, c, env.publish, "u", "after the last event")
		})
	}
}

// TestInboxGapIsAnnounced: a since that cannot be honoured gets a resync
// and no catch-up; the socket then carries live events as usual.
func TestInboxGapIsAnnounced(t *testing.T) {
	testenv.NoLeaks(t)
	for name, variant := range inboxVariants() {
		t.Run(name, func(t *testing.T) {
			const retention = 300 * time.Millisecond
			env := variant(t, publish.InboxConfig{MaxLen: 5, Retention: retention}, nil)
			h := env.h
			stale := env.publish(t, "u", `{"n":0}`)
			published := time.Now()
			testenv.Eventually(t, 5*time.Second, func() error {
				if time.Since(published) < 2*retention {
					return errors.New("retention not over")
				}
				return nil
			})
			head := env.publish(t, "u", `{"n":1}`) // trims the stale event
			many := ""
			for i := range 7 {
				id := env.publish(t, "u", fmt.Sprintf(`{"n":%d}`, 2+i))
				if i == 0 {
					many = id // 6 events follow it: more than MaxLen 5
				}
				head = id
			}
			tests := []struct{ name, since string }{
				{"older than the retention", stale},
				{"more than max len behind", many},
				{"garbage", "garbage"},
				{"empty", ""},
				{"three parts", "1-2-3"},
				{"newer than the head", "9007199254740992-0"},
			}
			for _, tt := range tests {
				c, w := h.connectSince("u", tt.since, true)
				if w.InboxID != "" {
					t.Fatalf("%s: welcome %s", tt.name, w.raw)
				}
				f := readInboxFrame(t, c, tt.name)
				// The head, or a later marker once the short retention has
				// expired the stream.
				got, ok := inbox.ParseStreamID(f.InboxID)
				if f.Type != "resync" || !ok || got.Compare(mustID(t, head)) < 0 || f.raw != `{"type":"resync","inbox_id":"`+f.InboxID+`"}` {
					t.Fatalf("%s: got %s, want a resync at %s or later, and no replay", tt.name, f.raw, head)
				}
				expectNothingBeforeEvent(t, c, env.publish, "u", tt.name)
				c.Close()
			}
			if got := h.metric(`herald_inbox_replays_total{result="resync"}`); got != float64(len(tests)) {
				t.Fatalf("resync count = %v, want %d", got, len(tests))
			}
		})
	}
}

func mustID(t *testing.T, s string) inbox.StreamID {
	t.Helper()
	id, ok := inbox.ParseStreamID(s)
	if !ok {
		t.Fatalf("%q is not a stream id", s)
	}
	return id
}

// TestInboxCatchUpTooBigForTheQueue: a catch-up that would fill more than half
// of the socket's queue is a resync, not a slow-consumer close.
func TestInboxCatchUpTooBigForTheQueue(t *testing.T) {
	testenv.NoLeaks(t)
	b := fanout.NewMemory(fanout.MemoryConfig{})
	in, err := inbox.NewMemory(b, inbox.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.Inbox = in; c.MaxQueueBytes = 4096 }})
	_, w := h.connectSince("u", "", false)
	big := `{"pad":"` + strings.Repeat("x", 1000) + `"}`
	for range 3 {
		if _, err := in.Append(context.Background(), "u", []byte(big)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := h.connectSince("u", w.InboxID, true)
	if f := readInboxFrame(t, c, "after welcome"); f.Type != "resync" {
		t.Fatalf("got %s, want a resync", f.raw)
	}
	expectNothingBeforeEvent(t, c, func(t *testing.T, user, payload string) string {
		id, err := in.Append(context.Background(), user, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}, "u", "after the resync")
}

// TestInboxAfterRedisRestart: Redis without persistence restarts; the
// inbox is gone, so a since from before gets a resync, also when new events
// have recreated the stream meanwhile.
func TestInboxAfterRedisRestart(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	env := redisInboxReplica(t, r, "a", publish.InboxConfig{}, nil)
	h := env.h
	live, _ := h.connectSince("live", "", false)
	c, _ := h.connectSince("u", "", false)
	seen := env.publish(t, "u", `{"n":1}`)
	readInboxFrame(t, c, "before the restart")
	c.Close()
	waitGone(t, h, "u")

	r.Kill()
	r.Start()
	// A socket that stayed up is told that events may be missing.
	if f := readInboxFrame(t, live, "live socket"); f.raw != `{"type":"resync"}` {
		t.Fatalf("live socket got %s, want the broker's resync", f.raw)
	}
	// The jti store refuses tokens minted within the second Redis started
	// in (1013): wait it out before the reconnect below.
	r.WaitUptime()
	after := env.publish(t, "u", `{"n":2}`) // recreates the stream
	c, _ = h.connectSince("u", seen, true)
	if f := readInboxFrame(t, c, "reconnect"); f.raw != `{"type":"resync","inbox_id":"`+after+`"}` {
		t.Fatalf("reconnect after the restart got %s, want a resync at %s", f.raw, after)
	}
	expectNothingBeforeEvent(t, c, env.publish, "u", "after the resync")
}

// TestInboxPlainPublishUnchanged: a plain PUBLISH user:<id> reaches an
// inbox socket verbatim, without an id, and leaves no inbox entry; the
// handshake of a user without an inbox writes none either.
func TestInboxPlainPublishUnchanged(t *testing.T) {
	testenv.NoLeaks(t)
	r := testenv.StartRedis(t)
	env := redisInboxReplica(t, r, "a", publish.InboxConfig{}, nil)
	c, w := env.h.connectSince("u", "", false)
	rc := r.Client()
	for _, p := range []string{"not json at all", `{"type":"status"}`, `["array"]`} {
		if err := rc.Publish(context.Background(), "user:u", p).Err(); err != nil {
			t.Fatal(err)
		}
		expectText(t, c, p, "plain publish")
	}
	// Nothing is in the inbox: the welcome named a position, not an
	// entry, and plain publishes are not stored.
	if id, ok := inbox.ParseStreamID(w.InboxID); !ok || id.Seq != inbox.PositionSeq {
		t.Fatalf("welcome's inbox_id %q, want a position (a user without an inbox)", w.InboxID)
	}
	if n, err := rc.Exists(context.Background(), "inbox:u").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS inbox:u = %d, %v; want no stream", n, err)
	}
	var _ redis.UniversalClient = rc
}

// TestInboxCatchUpSkipsWhatIsNotRelayed: an event fan-out would drop live
// (invalid UTF-8 here) is skipped in a catch-up too, not written.
func TestInboxCatchUpSkipsWhatIsNotRelayed(t *testing.T) {
	testenv.NoLeaks(t)
	b := fanout.NewMemory(fanout.MemoryConfig{})
	in, err := inbox.NewMemory(b, inbox.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.Inbox = in }})
	_, w := h.connectSince("u", "", false)
	var ids []string
	for _, p := range []string{`{"n":1}`, "{\"n\":\"\xff\"}", `{"n":3}`} {
		id, err := in.Append(context.Background(), "u", []byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	c, _ := h.connectSince("u", w.InboxID, true)
	for _, want := range []string{`{"inbox_id":"` + ids[0] + `","n":1}`, `{"inbox_id":"` + ids[2] + `","n":3}`} {
		if f := readInboxFrame(t, c, "replayed"); f.raw != want {
			t.Fatalf("got %s, want %s", f.raw, want)
		}
	}
	if m := readInboxFrame(t, c, "marker"); m.Type != "replay_complete" || m.Count != 2 || m.InboxID != ids[2] {
		t.Fatalf("marker = %s", m.raw)
	}
	// Once live (to the first socket) and once in the catch-up.
	if got := h.metric(`herald_messages_dropped_total{reason="invalid_utf8"}`); got != 2 {
		t.Fatalf("herald_messages_dropped_total{reason=\"invalid_utf8\"} = %v, want 2", got)
	}
}

// TestInboxTokenRefusedLate: with an inbox the token is consumed in the
// inbox read's step, once the socket is subscribed; a token used before
// still gets 4003 and no welcome, and nothing of it stays: the user's
// other socket keeps its events, and the user has one socket again.
func TestInboxTokenRefusedLate(t *testing.T) {
	testenv.NoLeaks(t)
	for name, variant := range inboxVariants() {
		t.Run(name, func(t *testing.T) {
			env := variant(t, publish.InboxConfig{}, nil)
			h := env.h
			token := h.token("u")
			first, err := h.dial(token)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if w := readInboxFrame(t, first, "welcome"); w.Type != "welcome" {
				t.Fatalf("first use: %s, want the welcome", w.raw)
			}
			again, err := h.dial(token)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			expectClose(t, again, 4003, "token_reused")
			testenv.Eventually(t, 5*time.Second, func() error {
				if n := len(h.srv.UserSockets("u")); n != 1 {
					return fmt.Errorf("%d sockets of u, want 1", n)
				}
				return nil
			})
			id := env.publish(t, "u", `{"type":"after"}`)
			if f := readInboxFrame(t, first, "event"); f.InboxID != id {
				t.Fatalf("the first socket got %s, want the event %s", f.raw, id)
			}
		})
	}
}
