package gateway_test

import (
	"io"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// handlerBroker is a memory broker that keeps the gateway's handler, so
// that a test can hand it messages as the broker's receive loop does.
type handlerBroker struct {
	fanout.Broker
	h fanout.Handler
}

func (b *handlerBroker) Start(h fanout.Handler) error {
	b.h = h
	return b.Broker.Start(h)
}

// TestDeliveryAllocations pins the delivery path at zero allocations
// per message in the steady state: from the broker handing a message to
// the gateway to the socket writes, for a user's sockets. Each client
// reads every frame before the next message, so every socket is idle when
// its message arrives (the path a socket that keeps up takes); a socket
// with a backlog makes one copy per message, shared by every socket that
// queues it. A broadcast is always queued (its writes spread over the write
// workers), so it allocates that copy and a queue slice per socket whose
// queue was empty; it is not pinned here.
func TestDeliveryAllocations(t *testing.T) {
	testenv.SkipUnderRace(t)
	testenv.NoLeaks(t)
	b := &handlerBroker{Broker: fanout.NewMemory(fanout.MemoryConfig{})}
	h := start(t, harnessOpts{broker: b})
	payload := []byte(`{"type":"friend_request","id":"5f0c2b1e-0d7e-4c1a-9d55-7f1a2b3c4d5e","from":"alice"}`)
	frameLen := 2 + len(payload)

	var readers []chan struct{}
	for _, user := range []string{"u1", "u1", "u2"} {
		c, _ := h.connect(user)
		got := make(chan struct{}, 1)
		readers = append(readers, got)
		go func() {
			defer close(got)
			buf := make([]byte, frameLen)
			for {
				_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadFull(c.Conn, buf); err != nil {
					return
				}
				got <- struct{}{}
			}
		}()
	}
	tests := []struct {
		name string
		to   publish.Target
		get  []int // readers that receive it
		want float64
	}{
		{"user with two sockets", publish.Target{Kind: publish.ToUser, ID: "u1"}, []int{0, 1}, 0},
		{"user with one socket", publish.Target{Kind: publish.ToUser, ID: "u2"}, []int{2}, 0},
	}
	for _, tt := range tests {
		deliver := func() {
			b.h.Deliver(tt.to, payload)
			for _, i := range tt.get {
				if _, ok := <-readers[i]; !ok {
					t.Fatalf("%s: socket %d got nothing", tt.name, i)
				}
			}
		}
		for range 10 { // pools and buffers reach their size
			deliver()
		}
		if allocs := testing.AllocsPerRun(500, deliver); allocs != tt.want {
			t.Errorf("%s: %.2f allocations per message, want %v", tt.name, allocs, tt.want)
		}
	}
}
