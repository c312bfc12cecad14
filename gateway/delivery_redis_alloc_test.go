package gateway_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/fanout/publish"
	fanoutredis "github.com/herald-gw/herald/fanout/redis"
	"github.com/herald-gw/herald/gateway"
	"github.com/herald-gw/herald/internal/resp"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestDeliveryAllocationsFromRedis pins the whole per-user delivery path at
// zero allocations per message in the steady state, from the Redis broker's
// read of its subscriber connection to the socket writes, in RESP2 and
// RESP3: a message PUBLISHed to a real redis-server is read, routed,
// checked, framed and written without an allocation. The publisher is a
// bare connection writing a prepared command, so that nothing but herald
// allocates in the process while it is measured; each client reads every
// frame before the next message, as in TestDeliveryAllocations.
func TestDeliveryAllocationsFromRedis(t *testing.T) {
	testenv.SkipUnderRace(t)
	for _, protocol := range []int{2, 3} {
		t.Run(map[int]string{2: "RESP2", 3: "RESP3"}[protocol], func(t *testing.T) {
			testenv.NoLeaks(t)
			srv := testenv.StartRedis(t)
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: protocol, MaxRetries: -1, DialTimeout: time.Second})
			t.Cleanup(func() { client.Close() })
			b, err := fanoutredis.New(client, fanoutredis.Config{NodeID: "n1", HealthInterval: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			h := start(t, harnessOpts{broker: b, gw: func(c *gateway.Config) { c.NodeID = "n1" }})
			testenv.Eventually(t, 10*time.Second, func() error {
				if !b.Ready() {
					return errors.New("broker not ready")
				}
				return nil
			})

			payload := []byte(`{"type":"friend_request","id":"5f0c2b1e-0d7e-4c1a-9d55-7f1a2b3c4d5e","from":"alice"}`)
			frameLen := 2 + len(payload)
			var readers []chan struct{}
			var sockets []string
			for _, user := range []string{"u1", "u1", "u2"} {
				c, w := h.connect(user)
				sockets = append(sockets, w.SocketID)
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

			pub, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			reply := make([]byte, 64)
			ch := publish.NewChannels("")
			tests := []struct {
				name    string
				channel string
				get     []int // readers that receive it
			}{
				{"user with two sockets", ch.User("u1"), []int{0, 1}},
				{"user with one socket", ch.User("u2"), []int{2}},
				{"one socket (pattern message)", ch.Socket(sockets[2]), []int{2}},
			}
			for _, tt := range tests {
				cmd := resp.AppendCommand(nil, "PUBLISH", tt.channel, string(payload))
				deliver := func() {
					if _, err := pub.Write(cmd); err != nil {
						t.Fatal(err)
					}
					if n, err := pub.Read(reply); err != nil || !bytes.HasPrefix(reply[:n], []byte(":1\r\n")) {
						t.Fatalf("%s: PUBLISH answered %q, %v; want one receiver", tt.name, reply[:n], err)
					}
					for _, i := range tt.get {
						if _, ok := <-readers[i]; !ok {
							t.Fatalf("%s: socket %d got nothing", tt.name, i)
						}
					}
				}
				for range 10 { // pools and buffers reach their size
					deliver()
				}
				if allocs := testing.AllocsPerRun(500, deliver); allocs != 0 {
					t.Errorf("%s: %.2f allocations per message, want 0", tt.name, allocs)
				}
			}
		})
	}
}
