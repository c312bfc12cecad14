package inbox

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// TestInboxBoundary: both inboxes draw the line at MaxLen. Exactly MaxLen
// events after since all come in the catch-up, in order, with no gap; one more and
// the answer is a gap. The embedded inbox used to count its own marker as
// an event and answered a gap at exactly MaxLen, where Redis gave them all.
func TestInboxBoundary(t *testing.T) {
	testenv.NoLeaks(t)
	const maxLen = 5
	impls := inboxImplsSimple()
	// Redis trims a stream by whole nodes of stream-node-max-entries
	// (100) entries, so with a short inbox it keeps more than asked. With
	// one entry a node it trims exactly, as the embedded inbox does.
	impls["redis, exact trimming"] = func(t *testing.T, cfg publish.InboxConfig) (Inbox, func() []string) {
		srv := testenv.StartRedisArgs(t, "--stream-node-max-entries", "1")
		in, err := NewRedis(srv.Client(), RedisConfig{Prefix: "p:", InboxConfig: cfg})
		if err != nil {
			t.Fatal(err)
		}
		return in, nil
	}
	for name, mk := range impls {
		t.Run(name, func(t *testing.T) {
			in, _ := mk(t, publish.InboxConfig{MaxLen: maxLen, Retention: time.Hour})
			ctx := context.Background()
			for _, tc := range []struct {
				name    string
				after   int // events appended after since
				wantGap bool
			}{
				{"one less", maxLen - 1, false},
				{"exactly max len", maxLen, false},
				{"one more", maxLen + 1, true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					start, err := in.Read(ctx, "u", "")
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for i := range tc.after {
						id, err := in.Append(ctx, "u", []byte(fmt.Sprintf(`{"n":%d}`, i)))
						if err != nil {
							t.Fatal(err)
						}
						ids = append(ids, id)
					}
					rd, err := in.Read(ctx, "u", start.Head)
					if err != nil {
						t.Fatal(err)
					}
					if rd.Gap != tc.wantGap {
						t.Fatalf("%d events after since with MaxLen %d: gap %v (%d events), want gap %v", tc.after, maxLen, rd.Gap, len(rd.Events), tc.wantGap)
					}
					if tc.wantGap {
						return
					}
					if len(rd.Events) != len(ids) {
						t.Fatalf("replayed %d events, want %d", len(rd.Events), len(ids))
					}
					for i, e := range rd.Events {
						if e.ID != ids[i] {
							t.Errorf("event %d = %s, want %s", i, e.ID, ids[i])
						}
					}
				})
			}
		})
	}
}
