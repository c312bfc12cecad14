package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PresenceEvents subscribes client to channel, as a backend service would
// listen to herald's presence events, and records each event as
// "<user_id>:<online>". The returned function waits up to within until the
// record is exactly want, in order. The subscription ends with the test.
func PresenceEvents(t testing.TB, client *redis.Client, channel string, within time.Duration) func(want ...string) {
	t.Helper()
	sub := client.Subscribe(context.Background(), channel)
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatalf("subscribe %s: %v", channel, err)
	}
	var (
		mu     sync.Mutex
		events []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range sub.Channel() {
			var e struct {
				Type   string `json:"type"`
				UserID string `json:"user_id"`
				Online *bool  `json:"online"`
				TS     int64  `json:"ts"`
			}
			if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil || e.Type != "presence" || e.UserID == "" || e.Online == nil || e.TS <= 0 {
				t.Errorf("%s: not a presence event: %q (%v)", channel, msg.Payload, err)
				continue
			}
			mu.Lock()
			events = append(events, fmt.Sprintf("%s:%v", e.UserID, *e.Online))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { sub.Close(); <-done })
	return func(want ...string) {
		t.Helper()
		Eventually(t, within, func() error {
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(events, want) {
				return fmt.Errorf("presence events %v; want %v", events, want)
			}
			return nil
		})
	}
}
