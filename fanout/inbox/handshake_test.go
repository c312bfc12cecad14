package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
	"github.com/herald-gw/herald/replay"
	"github.com/redis/go-redis/v9"
)

// A read for a user who has no inbox writes nothing: the head is a
// position (Position), not an entry, and it stays valid while nothing is
// appended; once events come, a since at it gets them all.
func TestReadWritesNoEntry(t *testing.T) {
	testenv.NoLeaks(t)
	srv := testenv.StartRedis(t)
	c := srv.Client()
	ctx := context.Background()
	in, err := NewRedis(c, RedisConfig{Prefix: "p:", InboxConfig: publish.InboxConfig{MaxLen: 5, Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	start, err := in.Read(ctx, "u", "")
	if err != nil {
		t.Fatal(err)
	}
	pos, ok := ParseStreamID(start.Head)
	if !ok || pos.Seq != PositionSeq || pos.MS == 0 {
		t.Fatalf("head of a missing inbox = %q, want <ms>-%d", start.Head, PositionSeq)
	}
	if n := c.Exists(ctx, "p:inbox:u").Val(); n != 0 {
		t.Fatalf("the read created the stream (EXISTS = %d)", n)
	}
	again, err := in.Read(ctx, "u", start.Head)
	if err != nil || again.Gap || again.Head != start.Head {
		t.Fatalf("since the position, no inbox yet = %+v, %v; want no gap at the same head", again, err)
	}
	if n := c.Exists(ctx, "p:inbox:u").Val(); n != 0 {
		t.Fatalf("the read with since created the stream (EXISTS = %d)", n)
	}
	var ids []string
	for i := range 3 {
		id, err := in.Append(ctx, "u", fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rd, err := in.Read(ctx, "u", start.Head)
	if err != nil || rd.Gap || rd.Head != ids[2] || len(rd.Events) != 3 {
		t.Fatalf("since the position, 3 events later = %+v, %v; want the 3 events", rd, err)
	}
	if n := c.XLen(ctx, "p:inbox:u").Val(); n != 3 {
		t.Fatalf("XLEN = %d, want the 3 events and nothing else", n)
	}
}

// TestPositionGaps: a position read where no inbox existed is a gap once
// events after it may have been lost: an entry was trimmed, the retention
// passed (a stream may have come and expired), or Redis restarted without
// its data.
func TestPositionGaps(t *testing.T) {
	testenv.NoLeaks(t)
	ctx := context.Background()
	t.Run("an entry deleted", func(t *testing.T) {
		// Trimming by count leaves more than MaxLen events after the
		// position, and trimming by age drops only what is older than
		// the retention: both are gaps by those rules. An entry deleted
		// otherwise (XDEL by hand) is seen in max-deleted-entry-id.
		srv := testenv.StartRedis(t)
		c := srv.Client()
		in := must(NewRedis(c, RedisConfig{InboxConfig: publish.InboxConfig{MaxLen: 10, Retention: time.Hour}}))
		start, err := in.Read(ctx, "u", "")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 3 {
			id, err := in.Append(ctx, "u", fmt.Appendf(nil, `{"n":%d}`, i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		if rd, err := in.Read(ctx, "u", start.Head); err != nil || rd.Gap || len(rd.Events) != 3 {
			t.Fatalf("since the position = %+v, %v; want the 3 events", rd, err)
		}
		if err := c.XDel(ctx, "inbox:u", ids[1]).Err(); err != nil {
			t.Fatal(err)
		}
		if rd, err := in.Read(ctx, "u", start.Head); err != nil || !rd.Gap {
			t.Fatalf("since the position after an XDEL = %+v, %v; want a gap", rd, err)
		}
		if rd, err := in.Read(ctx, "u", ids[0]); err != nil || !rd.Gap {
			t.Fatalf("since the event before the deleted one = %+v, %v; want a gap", rd, err)
		}
		if rd, err := in.Read(ctx, "u", ids[2]); err != nil || rd.Gap || len(rd.Events) != 0 {
			t.Fatalf("since the head = %+v, %v; want nothing and no gap", rd, err)
		}
	})
	t.Run("retention, memory", func(t *testing.T) {
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
		now.Add(5000)
		start, _ := in.Read(ctx, "u", "")
		now.Add(999)
		if rd, _ := in.Read(ctx, "u", start.Head); rd.Gap {
			t.Fatalf("since the position within the retention = %+v, want no gap", rd)
		}
		now.Add(1)
		if rd, _ := in.Read(ctx, "u", start.Head); !rd.Gap || rd.Head == start.Head {
			t.Fatalf("since the position a retention later = %+v, want a gap at a new position", rd)
		}
		before := Position(1764150000000 - 1).String() // read before this inbox started
		if rd, _ := in.Read(ctx, "u", before); !rd.Gap {
			t.Fatalf("since a position from before the start = %+v, want a gap", rd)
		}
	})
	t.Run("retention, redis", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		c := srv.Client()
		in, err := NewRedis(c, RedisConfig{InboxConfig: publish.InboxConfig{Retention: 300 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		start, err := in.Read(ctx, "u", "")
		if err != nil {
			t.Fatal(err)
		}
		pos, _ := ParseStreamID(start.Head)
		testenv.Eventually(t, 5*time.Second, func() error {
			if now := c.Time(ctx).Val(); uint64(now.UnixMilli()) <= pos.MS+1+300 {
				return errors.New("retention not over")
			}
			return nil
		})
		if rd, err := in.Read(ctx, "u", start.Head); err != nil || !rd.Gap {
			t.Fatalf("since the position a retention later = %+v, %v; want a gap", rd, err)
		}
	})
	t.Run("redis restarted", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		in, err := NewRedis(srv.Client(), RedisConfig{InboxConfig: publish.InboxConfig{Retention: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		start, err := in.Read(ctx, "u", "")
		if err != nil {
			t.Fatal(err)
		}
		if rd, err := in.Read(ctx, "u", start.Head); err != nil || rd.Gap {
			t.Fatalf("before the restart = %+v, %v; want no gap", rd, err)
		}
		srv.Kill()
		srv.Start()
		testenv.Eventually(t, 5*time.Second, func() error {
			rd, err := in.Read(ctx, "u", start.Head)
			if err != nil {
				return err
			}
			if !rd.Gap {
				t.Fatalf("since a position from before Redis lost its data = %+v, want a gap", rd)
			}
			return nil
		})
	})
}

// TestConsumeReadSync: the handshake's one step consumes the token and,
// for its first use only, reads the inbox and publishes the sync message;
// a used or expired token gets the store's refusal and reads nothing.
func TestConsumeReadSync(t *testing.T) {
	testenv.NoLeaks(t)
	ctx := context.Background()
	use := func(user string) replay.Use {
		return replay.Use{JTI: fmt.Sprintf("jti-%d", time.Now().UnixNano()), User: user,
			MintedBy: time.Now().Add(time.Second), Expires: time.Now().Add(time.Minute)}
	}
	check := func(t *testing.T, in TokenReader, store replay.Store, next func() string) {
		t.Helper()
		u := use("42")
		rd, err := in.ConsumeReadSync(ctx, store, u, "", []byte(`{"type":"sync-1"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ParseStreamID(rd.Head); !ok || rd.Gap {
			t.Fatalf("first use = %+v, want a head", rd)
		}
		if got := next(); got != `{"type":"sync-1"}` {
			t.Fatalf("published %q, want the sync message", got)
		}
		if _, err := in.ConsumeReadSync(ctx, store, u, "", []byte(`{"type":"sync-2"}`)); !errors.Is(err, replay.ErrReused) {
			t.Fatalf("second use = %v, want ErrReused", err)
		}
		old := use("42")
		old.Expires = time.Now().Add(-time.Second)
		if _, err := in.ConsumeReadSync(ctx, store, old, "", []byte(`{"type":"sync-3"}`)); !errors.Is(err, replay.ErrExpired) {
			t.Fatalf("an expired token = %v, want ErrExpired", err)
		}
		// Only the first use published: the next message is a new one.
		u = use("42")
		if _, err := in.ConsumeReadSync(ctx, store, u, "", []byte(`{"type":"sync-4"}`)); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != `{"type":"sync-4"}` {
			t.Fatalf("published %q after refused uses, want only the next first use's", got)
		}
	}
	t.Run("redis, one script", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		c := srv.Client()
		in := must(NewRedis(c, RedisConfig{Prefix: "p:"}))
		store := must(replay.NewRedis(c, replay.RedisConfig{Prefix: "p:"}))
		next := testenv.Listen(t, c, "p:user:42")
		// Warm the script cache, then count: one command per use.
		if _, err := in.ConsumeReadSync(ctx, store, use("7"), "", nil); err != nil {
			t.Fatal(err)
		}
		if err := c.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		check(t, in, store, func() string { return next().Payload })
		if calls := commandCalls(t, c); calls["evalsha"] != 4 || len(calls) != 1+len(innerCommands(calls)) {
			t.Fatalf("commands for 4 uses: %v, want 4 EVALSHA and only their inner commands", calls)
		}
	})
	t.Run("redis inbox, memory store", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		c := srv.Client()
		in := must(NewRedis(c, RedisConfig{}))
		store := replay.NewMemory(replay.MemoryConfig{})
		defer store.Close()
		next := testenv.Listen(t, c, "user:42")
		check(t, in, store, func() string { return next().Payload })
	})
	t.Run("memory", func(t *testing.T) {
		b := fanout.NewMemory(fanout.MemoryConfig{})
		rec := &userFrames{user: "42"}
		if err := b.Start(rec); err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		b.Subscribe("42")
		in := must(NewMemory(b, MemoryConfig{}))
		defer in.Close()
		store := replay.NewMemory(replay.MemoryConfig{})
		defer store.Close()
		seen := 0
		check(t, in, store, func() string {
			got := rec.list()
			if len(got) <= seen {
				return ""
			}
			seen++
			return got[seen-1]
		})
	})
	t.Run("cluster, one slot", func(t *testing.T) {
		_, cc := testenv.StartOneNodeCluster(t)
		in := must(NewRedis(cc, RedisConfig{}))
		store := must(replay.NewRedis(cc, replay.RedisConfig{}))
		sub := cc.SSubscribe(ctx, "user:{42}")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		check(t, in, store, func() string {
			m, err := sub.ReceiveMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return m.Payload
		})
		keys := cc.Keys(ctx, "jti:*").Val()
		if len(keys) != 2 || !strings.HasPrefix(keys[0], "jti:{42}:") {
			t.Fatalf("jti keys %q, want two under the user's hash tag", keys)
		}
	})
}

// commandCalls returns INFO commandstats' calls by command.
func commandCalls(t *testing.T, c *redis.Client) map[string]int {
	t.Helper()
	stats, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(stats, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, rest, _ := strings.Cut(rest, ":calls=")
		var n int
		fmt.Sscanf(rest, "%d", &n)
		if name != "config|resetstat" && name != "info" {
			out[name] = n
		}
	}
	return out
}

// innerCommands returns the commands in calls that a script runs.
func innerCommands(calls map[string]int) []string {
	var out []string
	for name := range calls {
		switch name {
		case "get", "time", "set", "publish", "xrevrange", "xinfo|stream", "xrange":
			out = append(out, name)
		}
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestConsumeSameKeyEitherWay: on a Redis Cluster, a token is spent under
// one key whether a replica consumes it in the inbox read's step or alone
// (a replica with --inbox=false, or one from before a rolling upgrade's
// new version), so that it can be used only once across both.
func TestConsumeSameKeyEitherWay(t *testing.T) {
	testenv.NoLeaks(t)
	ctx := context.Background()
	_, cc := testenv.StartOneNodeCluster(t)
	in := must(NewRedis(cc, RedisConfig{}))
	store := must(replay.NewRedis(cc, replay.RedisConfig{}))
	use := func(n int) replay.Use {
		return replay.Use{JTI: fmt.Sprintf("jti-%d-%d", n, time.Now().UnixNano()), User: "42",
			MintedBy: time.Now().Add(time.Second), Expires: time.Now().Add(time.Minute)}
	}

	u := use(1) // the inbox step first, then alone
	if _, err := in.ConsumeReadSync(ctx, store, u, "", []byte(`{"type":"sync"}`)); err != nil {
		t.Fatal(err)
	}
	if first, err := u.Consume(ctx, store); err != nil || first {
		t.Fatalf("alone after the inbox step: first=%v err=%v, want a reused token", first, err)
	}

	u = use(2) // alone first, then the inbox step
	if first, err := u.Consume(ctx, store); err != nil || !first {
		t.Fatalf("alone: first=%v err=%v, want the first use", first, err)
	}
	if _, err := in.ConsumeReadSync(ctx, store, u, "", []byte(`{"type":"sync"}`)); !errors.Is(err, replay.ErrReused) {
		t.Fatalf("the inbox step after alone = %v, want ErrReused", err)
	}
}
