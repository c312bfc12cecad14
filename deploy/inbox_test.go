package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// inboxFrame is the part of a frame the inbox test reads.
type inboxFrame struct {
	Type     string `json:"type"`
	SocketID string `json:"socket_id"`
	InboxID  string `json:"inbox_id"`
	Count    int    `json:"count"`
	raw      string
}

func (c *cluster) readFrame(t *testing.T, ws *testenv.WSClient, what string) inboxFrame {
	t.Helper()
	msg, err := ws.ReadText(5 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var f inboxFrame
	if err := json.Unmarshal([]byte(msg), &f); err != nil {
		t.Fatalf("%s: %q: %v", what, msg, err)
	}
	f.raw = msg
	return f
}

// TestInboxSurvivesReplicaKill: a user's replica is killed with SIGKILL;
// 20 events are published while the user is away; the client reconnects
// through nginx with since, lands on another replica and gets all 20
// exactly once, in order, then live events.
func TestInboxSurvivesReplicaKill(t *testing.T) {
	c := startCluster(t)
	pub, err := publish.NewPublisher(c.rdb, publish.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	tok, err := c.token(c.addrs["h1"], "u")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := c.dialRaw(c.addrs["h1"], tok, testenv.WSDialer{})
	if err != nil {
		t.Fatal(err)
	}
	if w := c.readFrame(t, ws, "welcome on h1"); w.Type != "welcome" || w.InboxID == "" {
		t.Fatalf("welcome on h1 = %s, want one with an inbox_id", w.raw)
	}
	first, _, err := pub.AppendToUser(ctx, "u", []byte(`{"type":"note","n":0}`))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.readFrame(t, ws, "live on h1"); f.InboxID != first {
		t.Fatalf("live on h1 = %s, want id %s", f.raw, first)
	}
	last := first

	c.procs["h1"].Kill()
	var ids []string
	for i := 1; i <= 20; i++ {
		id, _, err := pub.AppendToUser(ctx, "u", []byte(fmt.Sprintf(`{"type":"note","n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	// Through nginx, which skips the dead replica.
	var again *testenv.WSClient
	testenv.Eventually(t, 10*time.Second, func() error {
		tok, err := c.token(c.nginx.Addr, "u")
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		again, err = testenv.DialWS(dctx, "ws://"+c.nginx.Addr+"/ws?token="+url.QueryEscape(tok)+"&since="+url.QueryEscape(last), nil)
		return err
	})
	t.Cleanup(func() { again.Close() })
	w := c.readFrame(t, again, "welcome after the kill")
	if w.Type != "welcome" || w.SocketID == "" || w.SocketID[:3] == "h1." {
		t.Fatalf("welcome after the kill = %s, want one from h2 or h3", w.raw)
	}
	for i, id := range ids {
		f := c.readFrame(t, again, fmt.Sprintf("replayed %d", i+1))
		if want := fmt.Sprintf(`{"inbox_id":"%s","type":"note","n":%d}`, id, i+1); f.raw != want {
			t.Fatalf("replayed frame %d = %s, want %s", i+1, f.raw, want)
		}
	}
	if m := c.readFrame(t, again, "marker"); m.Type != "replay_complete" || m.Count != 20 || m.InboxID != ids[19] {
		t.Fatalf("marker = %s, want replay_complete with 20 and %s", m.raw, ids[19])
	}
	live, _, err := pub.AppendToUser(ctx, "u", []byte(`{"type":"note","n":21}`))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.readFrame(t, again, "live after the replay"); f.InboxID != live {
		t.Fatalf("after the replay got %s, want %s", f.raw, live)
	}
	// Nothing more: the next frame is the next event.
	next, _, err := pub.AppendToUser(ctx, "u", []byte(`{"type":"note","n":22}`))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.readFrame(t, again, "the next live event"); f.InboxID != next {
		t.Fatalf("then got %s, want nothing before the next event %s", f.raw, next)
	}
}
