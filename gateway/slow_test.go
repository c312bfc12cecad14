package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestSlowConsumer: a socket that never reads fills its kernel buffers, then
// its queue; it is closed with 4009 while the other sockets keep receiving.
func TestSlowConsumer(t *testing.T) {
	testenv.NoLeaks(t)
	// A small fixed send buffer too: loopback's autotuning would let the
	// kernel take megabytes first, which a loaded machine sends slowly.
	h := start(t, harnessOpts{sendBuffer: 16 << 10, gw: func(c *gateway.Config) {
		c.MaxQueueBytes = 64 << 10
		c.CloseTimeout = 30 * time.Second // the test reads the close frame late
		c.WriteTimeout = time.Minute
	}})
	// A small fixed receive buffer: the kernel cannot absorb much for a
	// client that does not read.
	slow, _ := h.connectWith(testenv.WSDialer{RecvBuffer: 16 << 10}, "slow")
	fast, _ := h.connect("fast")

	payload := strings.Repeat("x", 16<<10)
	ctx := context.Background()
	// The buffers and the queue hold well under 1 MiB: 64 broadcasts of
	// 16 KiB fill them four times over.
	sent := 0
	for h.metric("herald_slow_consumers_total") == 0 {
		if sent == 256 {
			t.Fatalf("no slow consumer after %d broadcasts", sent)
		}
		msg := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, sent, payload)
		if err := h.srv.Broadcast(ctx, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		sent++
		// The fast socket reads everything, in order.
		got, err := fast.ReadText(5 * time.Second)
		if err != nil || !strings.HasPrefix(got, fmt.Sprintf(`{"n":%d,`, sent-1)) {
			t.Fatalf("fast socket: message %d: %.20q %v", sent-1, got, err)
		}
	}
	// The fast socket still receives after the slow one was shed.
	if err := h.srv.SendToUser(ctx, "fast", []byte("after")); err != nil {
		t.Fatal(err)
	}
	expectText(t, fast, "after", "fast socket")

	// The slow socket, once it reads, finds what fitted in the buffers and
	// then the close frame.
	expectClose(t, slow, 4009, "slow_consumer")
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(h.srv.UserSockets("slow")) != 0 {
			return errors.New("slow socket still registered")
		}
		return nil
	})
	if got := h.metric(`herald_disconnects_total{code="4009"}`); got != 1 {
		t.Errorf("disconnects with 4009 = %v, want 1", got)
	}
	t.Logf("slow consumer shed after %d messages of %d KiB", sent, len(payload)>>10)
}

// TestWriteTimeout: a socket whose output stops moving is dropped after the
// write timeout even while its queue is under the cap.
func TestWriteTimeout(t *testing.T) {
	testenv.NoLeaks(t)
	// A small fixed send buffer too: loopback's autotuning would let the
	// kernel take megabytes first, which a loaded machine sends slowly.
	h := start(t, harnessOpts{sendBuffer: 16 << 10, gw: func(c *gateway.Config) {
		c.MaxQueueBytes = 64 << 20
		c.WriteTimeout = 300 * time.Millisecond
	}})
	h.connectWith(testenv.WSDialer{RecvBuffer: 16 << 10}, "stuck")
	// 8 MiB: more than the kernel buffers on both sides hold.
	payload := []byte(strings.Repeat("y", 64<<10))
	for range 128 {
		if err := h.srv.SendToUser(context.Background(), "stuck", payload); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if h.metric("herald_write_timeouts_total") >= 1 {
			return nil
		}
		return errors.New("no write timeout yet")
	})
	testenv.Eventually(t, 5*time.Second, func() error {
		if len(h.srv.UserSockets("stuck")) != 0 {
			return errors.New("stuck socket still registered")
		}
		return nil
	})
}
