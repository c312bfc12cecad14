package inbox

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/redis/go-redis/v9"
)

func TestInboxFrame(t *testing.T) {
	tests := []struct {
		name, id, payload, want string
	}{
		{"object", "5-1", `{"type":"x"}`, `{"inbox_id":"5-1","type":"x"}`},
		{"empty object", "5-1", `{}`, `{"inbox_id":"5-1"}`},
		{"empty object with spaces", "5-1", "{ \n}", `{"inbox_id":"5-1"` + " \n}"},
		{"leading space inside", "1-0", `{ "a":1}`, `{"inbox_id":"1-0", "a":1}`},
		{"nested", "1-0", `{"a":{"b":[1,2]}}`, `{"inbox_id":"1-0","a":{"b":[1,2]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(publish.InboxFrame(tt.id, []byte(tt.payload)))
			if got != tt.want {
				t.Fatalf("InboxFrame = %s, want %s", got, tt.want)
			}
			id, ok := publish.InboxFrameID([]byte(got))
			if !ok || id != tt.id {
				t.Fatalf("InboxFrameID(%s) = %q %v, want %q", got, id, ok, tt.id)
			}
		})
	}
	for _, p := range []string{`{"type":"x"}`, `{"inbox":"1-0"}`, "plain", "", `{"inbox_id":"unterminated`} {
		if id, ok := publish.InboxFrameID([]byte(p)); ok {
			t.Errorf("InboxFrameID(%q) = %q, want none", p, id)
		}
	}
}

func TestParseStreamID(t *testing.T) {
	tests := []struct {
		in   string
		want StreamID
		ok   bool
	}{
		{"1764150000000-0", StreamID{1764150000000, 0}, true},
		{"0-0", StreamID{}, true},
		{"5-18", StreamID{5, 18}, true},
		{"9007199254740992-0", StreamID{1 << 53, 0}, true},
		{"9007199254740993-0", StreamID{}, false}, // past what Lua compares exactly
		{"1764150000000", StreamID{}, false},
		{"", StreamID{}, false},
		{"-", StreamID{}, false},
		{"1-", StreamID{}, false},
		{"-1", StreamID{}, false},
		{"1-2-3", StreamID{}, false},
		{"a-1", StreamID{}, false},
		{"+1-1", StreamID{}, false},
		{" 1-1", StreamID{}, false},
		{"99999999999999999999999-0", StreamID{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseStreamID(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseStreamID(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	a, b := StreamID{5, 1}, StreamID{5, 2}
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 || (StreamID{4, 9}).Compare(a) != -1 {
		t.Error("Compare orders ids wrongly")
	}
}

// TestInboxReadRules runs the same rules over both implementations: what a
// reconnect with since gets, and when it gets a gap instead.
func TestInboxReadRules(t *testing.T) {
	testenv.NoLeaks(t)
	for name, mk := range inboxImplsSimple() {
		t.Run(name, func(t *testing.T) {
			in, frames := mk(t, publish.InboxConfig{MaxLen: 5, Retention: time.Hour})
			ctx := context.Background()
			read := func(since string) Result {
				t.Helper()
				rd, err := in.Read(ctx, "u", since)
				if err != nil {
					t.Fatalf("Read(%q): %v", since, err)
				}
				if _, ok := ParseStreamID(rd.Head); !ok {
					t.Fatalf("Read(%q) head %q is not an id", since, rd.Head)
				}
				return rd
			}

			// A user without an inbox: the head is a fresh marker; since
			// cannot be honoured.
			if rd := read("1-0"); !rd.Gap || len(rd.Events) != 0 {
				t.Fatalf("since on a missing inbox = %+v, want a gap", rd)
			}
			start := read("")
			if start.Gap || len(start.Events) != 0 {
				t.Fatalf("first read = %+v", start)
			}
			if again := read(start.Head); again.Gap || len(again.Events) != 0 || again.Head != start.Head {
				t.Fatalf("since = head on a quiet inbox = %+v, want nothing and no gap", again)
			}

			var ids []string
			for i := range 3 {
				payload := fmt.Sprintf(`{"n":%d}`, i)
				id, err := in.Append(ctx, "u", []byte(payload))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if got := frames(); len(got) != 3 {
					return fmt.Errorf("frames %q", got)
				}
				return nil
			})
			for i, f := range frames() {
				if want := fmt.Sprintf(`{"inbox_id":"%s","n":%d}`, ids[i], i); f != want {
					t.Fatalf("frame %d = %s, want %s", i, f, want)
				}
			}

			rd := read(start.Head)
			if rd.Gap || rd.Head != ids[2] || len(rd.Events) != 3 {
				t.Fatalf("since the start = %+v, want the 3 events", rd)
			}
			for i, e := range rd.Events {
				if e.ID != ids[i] || string(e.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
					t.Fatalf("event %d = %s %s", i, e.ID, e.Payload)
				}
			}
			if rd := read(ids[1]); rd.Gap || len(rd.Events) != 1 || rd.Events[0].ID != ids[2] {
				t.Fatalf("since the second = %+v, want the third", rd)
			}
			if rd := read(ids[2]); rd.Gap || len(rd.Events) != 0 {
				t.Fatalf("since the head = %+v, want nothing", rd)
			}

			gaps := map[string]string{
				"garbage":          "abc",
				"three parts":      "1-2-3",
				"bare ms":          "1764150000000",
				"newer than head":  "9007199254740992-0",
				"older than first": "0-1",
			}
			for why, since := range gaps {
				if rd := read(since); !rd.Gap || len(rd.Events) != 0 || rd.Head != ids[2] {
					t.Errorf("%s (%q) = %+v, want a gap at head %s", why, since, rd, ids[2])
				}
			}

			// More than MaxLen events after since: a gap, whatever the
			// trimming kept.
			for i := range 6 {
				if _, err := in.Append(ctx, "u", []byte(fmt.Sprintf(`{"more":%d}`, i))); err != nil {
					t.Fatal(err)
				}
			}
			if rd := read(start.Head); !rd.Gap {
				t.Fatalf("9 events after since with MaxLen 5 = %+v, want a gap", rd)
			}

			if _, err := in.Append(ctx, "u", []byte(`[1]`)); !errors.Is(err, publish.ErrNotObject) {
				t.Fatalf("Append of an array = %v, want ErrNotObject", err)
			}
			if _, err := in.Append(ctx, "", []byte(`{}`)); !errors.Is(err, publish.ErrInvalidTarget) {
				t.Fatalf("Append to nobody = %v, want ErrInvalidTarget", err)
			}
		})
	}
}

// inboxImplsSimple returns constructors of both inboxes for user "u", with a
// function that returns the frames published to u so far.
func inboxImplsSimple() map[string]func(t *testing.T, cfg publish.InboxConfig) (Inbox, func() []string) {
	return map[string]func(t *testing.T, cfg publish.InboxConfig) (Inbox, func() []string){
		"memory": func(t *testing.T, cfg publish.InboxConfig) (Inbox, func() []string) {
			b := fanout.NewMemory(fanout.MemoryConfig{})
			rec := &userFrames{user: "u"}
			if err := b.Start(rec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			b.Subscribe("u")
			in, err := NewMemory(b, MemoryConfig{InboxConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { in.Close() })
			return in, rec.list
		},
		"redis": func(t *testing.T, cfg publish.InboxConfig) (Inbox, func() []string) {
			srv := testenv.StartRedis(t)
			in, err := NewRedis(srv.Client(), RedisConfig{Prefix: "p:", InboxConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			// What a replica subscribed to u receives.
			ps := srv.Client().Subscribe(context.Background(), "p:user:u")
			t.Cleanup(func() { ps.Close() })
			if _, err := ps.Receive(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []string
			return in, func() []string {
				for {
					m, err := ps.ReceiveTimeout(context.Background(), 20*time.Millisecond)
					if err != nil {
						return got
					}
					if m, ok := m.(*redis.Message); ok {
						got = append(got, m.Payload)
					}
				}
			}
		},
	}
}

// TestRedisInboxKeys pins the stream the script writes: its key, its
// field, its expiry, and the trimming by count and by age.
func TestRedisInboxKeys(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	c := srv.Client()
	ctx := context.Background()
	in, err := NewRedis(c, RedisConfig{Prefix: "app:", InboxConfig: publish.InboxConfig{MaxLen: 3, Retention: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := in.Append(ctx, "42", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := c.XRange(ctx, "app:inbox:42", "-", "+").Result()
	if err != nil || len(entries) != 1 || entries[0].ID != first || entries[0].Values["p"] != `{"a":1}` {
		t.Fatalf("stream = %v, %v", entries, err)
	}
	if ttl := c.PTTL(ctx, "app:inbox:42").Val(); ttl <= 0 || ttl > 400*time.Millisecond {
		t.Fatalf("PTTL = %s, want up to the retention", ttl)
	}
	// Age: once the retention has passed, the next append trims the old
	// entry (MINID), or the key has expired already; either way it is gone
	// and a since at it is a gap.
	firstID, _ := ParseStreamID(first)
	testenv.Eventually(t, 5*time.Second, func() error {
		ms, err := c.Time(ctx).Result()
		if err != nil {
			return err
		}
		if uint64(ms.UnixMilli()) <= firstID.MS+400 {
			return errors.New("retention not over")
		}
		return nil
	})
	if _, err := in.Append(ctx, "42", []byte(`{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	if got := c.XLen(ctx, "app:inbox:42").Val(); got != 1 {
		t.Fatalf("XLEN after the retention = %d, want 1", got)
	}
	if rd, err := in.Read(ctx, "42", first); err != nil || !rd.Gap {
		t.Fatalf("since a trimmed id = %+v, %v; want a gap", rd, err)
	}
	// Expiry: an inbox nothing was appended to for the retention is gone.
	testenv.Eventually(t, 5*time.Second, func() error {
		if c.Exists(ctx, "app:inbox:42").Val() != 0 {
			return errors.New("still there")
		}
		return nil
	})
	// The script refuses what it cannot splice into, from any client.
	err = c.Eval(ctx, publish.AppendScript, []string{"app:inbox:42"}, "app:user:42", "not json", 3, 1000).Err()
	if err == nil || !strings.Contains(err.Error(), "JSON object") {
		t.Fatalf("EVAL with a non-object = %v, want the script's error", err)
	}
}

// TestMemoryInboxAge checks trimming by age and expiry with a test clock.
func TestMemoryInboxAge(t *testing.T) {
	testenv.NoLeaks(t)
	b := fanout.NewMemory(fanout.MemoryConfig{})
	if err := b.Start(&userFrames{}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var now atomic.Int64
	now.Store(1764150000000)
	in, err := NewMemory(b, MemoryConfig{
		InboxConfig: publish.InboxConfig{MaxLen: 10, Retention: time.Second},
		Now:         func() time.Time { return time.UnixMilli(now.Load()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx := context.Background()
	e1, _ := in.Append(ctx, "u", []byte(`{"n":1}`))
	now.Add(600)
	e2, _ := in.Append(ctx, "u", []byte(`{"n":2}`))
	now.Add(600) // e1 is now 1.2 s old
	e3, _ := in.Append(ctx, "u", []byte(`{"n":3}`))
	if e1 != "1764150000000-0" || e2 != "1764150000600-0" || e3 != "1764150001200-0" {
		t.Fatalf("ids %s %s %s", e1, e2, e3)
	}
	if rd, _ := in.Read(ctx, "u", e1); !rd.Gap {
		t.Fatalf("since e1 after e1 aged out = %+v, want a gap", rd)
	}
	if rd, _ := in.Read(ctx, "u", e2); rd.Gap || len(rd.Events) != 1 || rd.Events[0].ID != e3 {
		t.Fatalf("since e2 = %+v, want e3", rd)
	}
	// Same millisecond: the sequence part grows.
	e4, _ := in.Append(ctx, "u", []byte(`{"n":4}`))
	if e4 != "1764150001200-1" {
		t.Fatalf("e4 = %s", e4)
	}
	// A clock that steps back does not make ids go back.
	now.Add(-5000)
	if e5, _ := in.Append(ctx, "u", []byte(`{"n":5}`)); e5 != "1764150001200-2" {
		t.Fatalf("e5 after a clock step back = %s", e5)
	}
	now.Add(5000 + 1000) // a full retention without appends: expired
	if rd, _ := in.Read(ctx, "u", e4); !rd.Gap {
		t.Fatalf("since e4 after expiry = %+v, want a gap", rd)
	}
}

// TestAppendScriptWithRedisCLI runs the README's recipe for other
// languages: redis-cli EVAL of fanout/publish/inbox_append.lua.
func TestAppendScriptWithRedisCLI(t *testing.T) {
	testenv.NoLeaks(t)
	cli := testenv.LookBinary(t, "redis-cli", "redis-tools")
	srv := testenv.StartRedis(t)
	next := testenv.Listen(t, srv.Client(), "user:42")
	host, port, _ := strings.Cut(srv.Addr(), ":")
	out, err := exec.Command(cli, "-h", host, "-p", port, "EVAL", publish.AppendScript, "1",
		"inbox:42", "user:42", `{"type":"friend_request","data":{"from":{"id":"7"}}}`, "100", "86400000").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli EVAL: %v\n%s", err, out)
	}
	lines := strings.Fields(string(out)) // the id, then the receivers
	if len(lines) != 2 || lines[1] != "1" {
		t.Fatalf("redis-cli printed %q, want the id and 1 receiver", out)
	}
	if _, ok := ParseStreamID(lines[0]); !ok {
		t.Fatalf("id %q", lines[0])
	}
	if msg := next(); msg.Payload != `{"inbox_id":"`+lines[0]+`","type":"friend_request","data":{"from":{"id":"7"}}}` {
		t.Fatalf("published %s", msg.Payload)
	}
	if got := srv.Client().XLen(context.Background(), "inbox:42").Val(); got != 1 {
		t.Fatalf("XLEN inbox:42 = %d", got)
	}
}

// ReadSync publishes its message on the user's channel, where Append
// publishes events, after every event it read: a subscriber gets the
// events up to the head first, then the message; Read publishes nothing.
func TestRedisInboxReadSync(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	c := srv.Client()
	ctx := context.Background()
	in, err := NewRedis(c, RedisConfig{Prefix: "app:"})
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(ctx, "app:user:42")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		since  func(last string) string
		events int // appended before the read
	}{
		{"no since, new inbox", func(string) string { return "" }, 0},
		{"no since", func(string) string { return "" }, 3},
		{"since the last event but one", func(last string) string { return last }, 2},
		{"malformed since", func(string) string { return "x" }, 1},
	}
	last := ""
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			since := tc.since(last)
			var ids []string
			for n := range tc.events {
				id, err := in.Append(ctx, "42", fmt.Appendf(nil, `{"n":%d}`, n))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if plain, err := in.Read(ctx, "42", ""); err != nil || (len(ids) > 0 && plain.Head != ids[len(ids)-1]) {
				t.Fatalf("Read = %+v, %v", plain, err)
			}
			sync := fmt.Sprintf(`{"sync":%d}`, i)
			rd, err := in.ReadSync(ctx, "42", since, []byte(sync))
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) > 0 && rd.Head != ids[len(ids)-1] {
				t.Fatalf("head %s, want %s", rd.Head, ids[len(ids)-1])
			}
			for _, id := range ids {
				m, err := sub.ReceiveMessage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := publish.InboxFrameID([]byte(m.Payload)); got != id {
					t.Fatalf("message %q, want the event %s first", m.Payload, id)
				}
			}
			m, err := sub.ReceiveMessage(ctx)
			if err != nil || m.Payload != sync {
				t.Fatalf("message %v, %v; want the sync %s (Read publishes nothing)", m, err, sync)
			}
			last = rd.Head
		})
	}
}

// userFrames is a broker Handler that keeps what reaches one user.
type userFrames struct {
	user   string
	mu     sync.Mutex
	frames []string // guarded by mu
}

func (h *userFrames) Deliver(to publish.Target, payload []byte) {
	if to == publish.User(h.user) {
		h.mu.Lock()
		h.frames = append(h.frames, string(payload))
		h.mu.Unlock()
	}
}
func (h *userFrames) Control(publish.Control) {}
func (h *userFrames) Resync()                 {}

func (h *userFrames) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.frames...)
}

// With a cluster client, the handshake's inbox read publishes its sync
// message where the events go: by SPUBLISH on the user's hash-tagged
// channel, which shares the stream's slot.
func TestRedisInboxReadSyncSharded(t *testing.T) {
	testenv.NoLeaks(t)
	_, cc := testenv.StartOneNodeCluster(t)
	ctx := context.Background()
	in, err := NewRedis(cc, RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sub := cc.SSubscribe(ctx, "user:{42}")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	id, err := in.Append(ctx, "42", []byte(`{"type":"kept"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.ReadSync(ctx, "42", "", []byte(`{"type":"sync-42"}`)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"inbox_id":"` + id + `","type":"kept"}`, `{"type":"sync-42"}`} {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil || m.Channel != "user:{42}" || m.Payload != want {
			t.Fatalf("SSUBSCRIBE user:{42} got %+v, %v; want %s", m, err, want)
		}
	}
	if l := cc.XLen(ctx, "inbox:{42}").Val(); l < 1 {
		t.Fatalf("XLEN inbox:{42} = %d", l)
	}
}
