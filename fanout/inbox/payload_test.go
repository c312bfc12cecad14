package inbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// smuggledInboxIDs are inbox payloads with a top-level "inbox_id" of their
// own. The frame would then carry two, and JSON.parse keeps the last: a
// field the application copied from user input would become the client's
// catch-up position.
var smuggledInboxIDs = map[string]string{
	"first":          `{"inbox_id":"9999999999999-0","type":"x"}`,
	"last":           `{"type":"x","inbox_id":"1-0"}`,
	"spaced":         `{ "type" : "x" , "inbox_id" : "1-0" }`,
	"escaped key":    `{"type":"x","inbox\u005fid":"1-0"}`,
	"not a string":   `{"inbox_id":7}`,
	"after a nested": `{"a":{"b":[1,{"c":"}"}]},"inbox_id":null}`,
}

// innocentInboxIDs mention inbox_id without carrying one at the top level.
var innocentInboxIDs = map[string]string{
	"nested":      `{"type":"x","data":{"inbox_id":"1-0"}}`,
	"in a value":  `{"type":"x","note":"inbox_id"}`,
	"in an array": `{"type":"x","ids":["inbox_id"]}`,
	"similar key": `{"type":"x","inbox_ids":"1-0"}`,
}

// TestInboxRefusesInboxID: an inbox payload with a top-level inbox_id is
// refused by both inboxes (ErrInboxIDInPayload), by the Go publisher, and
// by the append script itself, whoever runs it.
func TestInboxRefusesInboxID(t *testing.T) {
	testenv.NoLeaks(t)
	ctx := context.Background()
	for name, mk := range inboxImplsSimple() {
		t.Run(name, func(t *testing.T) {
			in, frames := mk(t, publish.InboxConfig{MaxLen: 10, Retention: time.Hour})
			for why, p := range smuggledInboxIDs {
				if _, err := in.Append(ctx, "u", []byte(p)); !errors.Is(err, publish.ErrInboxIDInPayload) {
					t.Errorf("Append %s %s = %v, want ErrInboxIDInPayload", why, p, err)
				}
			}
			for why, p := range innocentInboxIDs {
				if _, err := in.Append(ctx, "u", []byte(p)); err != nil {
					t.Errorf("Append %s %s = %v, want it stored", why, p, err)
				}
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				if got := frames(); len(got) != len(innocentInboxIDs) {
					return errors.New("frames: " + strings.Join(got, " "))
				}
				return nil
			})
		})
	}
	t.Run("publisher and script", func(t *testing.T) {
		srv := testenv.StartRedis(t)
		c := srv.Client()
		pub, err := publish.NewPublisher(c, publish.PublisherConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for why, p := range smuggledInboxIDs {
			if _, err := pub.SendToUser(ctx, "u", []byte(p)); !errors.Is(err, publish.ErrInboxIDInPayload) {
				t.Errorf("SendToUser %s %s = %v, want ErrInboxIDInPayload", why, p, err)
			}
			err := c.Eval(ctx, publish.AppendScript, []string{"inbox:u"}, "user:u", p, 10, 60000).Err()
			if err == nil || !strings.Contains(err.Error(), "inbox_id") {
				t.Errorf("the script with %s %s = %v, want its inbox_id error", why, p, err)
			}
		}
		for why, p := range innocentInboxIDs {
			if err := c.Eval(ctx, publish.AppendScript, []string{"inbox:u"}, "user:u", p, 10, 60000).Err(); err != nil {
				t.Errorf("the script with %s %s = %v, want it stored", why, p, err)
			}
		}
		if n := c.XLen(ctx, "inbox:u").Val(); n != int64(len(innocentInboxIDs)) {
			t.Errorf("XLEN = %d, want %d: only the innocent payloads stored", n, len(innocentInboxIDs))
		}
	})
}
