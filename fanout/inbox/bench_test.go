package inbox

import (
	"context"
	"fmt"
	"testing"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// The cost of the inbox write against a plain PUBLISH, one client, through
// a real redis-server on loopback (no subscriber: the PUBLISH fan-out cost
// is the same for both).
func BenchmarkInboxWrite(b *testing.B) {
	srv := testenv.StartRedis(b)
	c := srv.Client()
	ctx := context.Background()
	payload := []byte(`{"type":"friend_request","id":"5f0c6a8e-2d1b-4c3e-9f7a-1b2c3d4e5f60","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
	plain, err := publish.NewPublisher(c, publish.PublisherConfig{NoInbox: true})
	if err != nil {
		b.Fatal(err)
	}
	inbox, err := publish.NewPublisher(c, publish.PublisherConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := inbox.SendToUser(ctx, "warm", payload); err != nil { // loads the script
		b.Fatal(err)
	}
	b.Run("publish", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := plain.SendToUser(ctx, "u", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inbox_script", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := inbox.SendToUser(ctx, fmt.Sprint("u", i%1000), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("publish_parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := plain.SendToUser(ctx, "u", payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("inbox_script_parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				i++
				if _, err := inbox.SendToUser(ctx, fmt.Sprint("p", i%1000), payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// The cost of the catch-up read: the events after since, from a stream of
// 100 events.
func BenchmarkInboxCatchUp(b *testing.B) {
	srv := testenv.StartRedis(b)
	ctx := context.Background()
	payload := []byte(`{"type":"friend_request","id":"5f0c6a8e-2d1b-4c3e-9f7a-1b2c3d4e5f60","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
	mem := fanout.NewMemory(fanout.MemoryConfig{})
	defer mem.Close()
	mi, err := NewMemory(mem, MemoryConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer mi.Close()
	ri, err := NewRedis(srv.Client(), RedisConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name string
		in   Inbox
	}{{"redis", ri}, {"memory", mi}} {
		var ids []string
		for range 100 {
			id, err := impl.in.Append(ctx, "u", payload)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, n := range []int{0, 10, 99} {
			since := ids[len(ids)-1-n]
			b.Run(fmt.Sprintf("%s/%d_events", impl.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					rd, err := impl.in.Read(ctx, "u", since)
					if err != nil || rd.Gap {
						b.Fatalf("read: %+v %v", rd, err)
					}
				}
			})
		}
	}
}
