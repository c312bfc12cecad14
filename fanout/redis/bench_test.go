package redis

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/fanouttest"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// countingHandler counts deliveries and keeps nothing.
type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Deliver(publish.Target, []byte) { h.n.Add(1) }
func (h *countingHandler) Control(publish.Control)        { h.n.Add(1) }
func (h *countingHandler) Resync()                        {}

// BenchmarkDispatch is the receive loop's work per message once the reader
// has parsed it: route by channel, count, hand the payload to the handler.
func BenchmarkDispatch(b *testing.B) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	r, err := New(client, Config{NodeID: "n1", Prefix: "app:"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	h := &countingHandler{}
	r.s.h = h
	msgs := [][2][]byte{
		{[]byte("app:user:42"), []byte(`{"type":"friend_request","id":"5f0c1b8e-0d7e-4a57-9c43-3f4c1d2f9a10","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)},
		{[]byte("app:socket:n1.abcdef"), []byte(`{"type":"ping"}`)},
		{[]byte("app:broadcast"), []byte(`{"type":"maintenance"}`)},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m := msgs[i%len(msgs)]
		r.s.dispatch(m[0], m[1])
	}
	if h.n.Load() == 0 {
		b.Fatal("nothing delivered")
	}
}

// BenchmarkRedisReceive measures the whole relay: PUBLISH (pipelined) through
// a real redis-server to the broker's handler.
func BenchmarkRedisReceive(b *testing.B) {
	srv := testenv.StartRedis(b)
	br, err := New(srv.Client(), Config{NodeID: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	h := &countingHandler{}
	if err := br.Start(h); err != nil {
		b.Fatal(err)
	}
	fanouttest.WaitReady(b, br)
	fanouttest.WaitClosed(b, br.Subscribe("42"), 5*time.Second, "42")
	pub := srv.Client()
	ctx := context.Background()
	payload := []byte(`{"type":"friend_request","id":"5f0c1b8e-0d7e-4a57-9c43-3f4c1d2f9a10","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)

	b.ReportAllocs()
	b.ResetTimer()
	const batch = 500
	for sent := 0; sent < b.N; {
		p := pub.Pipeline()
		n := min(batch, b.N-sent)
		for range n {
			p.Publish(ctx, "user:42", payload)
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	deadline := time.Now().Add(time.Minute)
	for h.n.Load() < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered", h.n.Load(), b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
