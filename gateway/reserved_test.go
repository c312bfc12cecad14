package gateway_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/internal/testenv"
)

// reservedPayloads are application payloads a client would take for one of
// herald's own frames: a top-level "type" naming one, however it is spelt
// in JSON.
var reservedPayloads = []struct{ name, payload string }{
	{"reconnect with a 10-day wait", `{"type":"reconnect","after_ms":864000000}`},
	{"welcome", `{"type":"welcome","socket_id":"x","user_id":"mallory"}`},
	{"resync", `{"type":"resync"}`},
	{"replay_complete", `{"type":"replay_complete","count":0}`},
	{"pong", `{"type":"pong"}`},
	{"spaces around the member", "{\n \"type\" :\t\"resync\" } "},
	{"type after a nested object", `{"data":{"type":"x","a":[1,{"b":"}"}]},"type":"reconnect","after_ms":1}`},
	{"an escaped key", `{"typ\u0065":"reconnect","after_ms":1}`},
	{"an escaped value", `{"type":"re\u0073ync"}`},
	{"a second type member (JSON.parse keeps the last)", `{"type":"friend_request","type":"reconnect","after_ms":1}`},
}

// allowedPayloads look close to herald's frames and are the application's.
var allowedPayloads = []string{
	`{"type":"friend_request","data":{"type":"reconnect","after_ms":864000000}}`,
	`{"type":"reconnected"}`,
	`{"type":"Resync"}`,
	`{"kind":"resync"}`,
	`{"type":["resync"]}`,
	`{"note":"\"type\":\"resync\""}`,
}

// TestReservedTypesAreNotRelayed: a published payload whose top-level "type"
// is one of herald's frame types never reaches a socket, live or in a catch-up,
// to a user, a socket or everyone; payloads that only look alike do.
func TestReservedTypesAreNotRelayed(t *testing.T) {
	testenv.NoLeaks(t)
	for name, variant := range inboxVariants() {
		t.Run(name, func(t *testing.T) {
			env := variant(t, publish.InboxConfig{}, nil)
			h := env.h
			ctx := context.Background()
			c, _ := h.connectSince("u", "", false)
			other, ow := h.connect("v")
			n := 0
			next := func(c *testenv.WSClient, what string) {
				t.Helper()
				n++
				want := fmt.Sprintf(`{"type":"next","n":%d}`, n)
				id := env.publish(t, "u", want)
				if err := h.srv.SendToSocket(ctx, ow.SocketID, []byte(want)); err != nil {
					t.Fatal(err)
				}
				expectText(t, c, `{"inbox_id":"`+id+`",`+want[1:], what+": u")
				expectText(t, other, want, what+": v")
			}
			for _, p := range reservedPayloads {
				env.publish(t, "u", p.payload)
				for _, send := range []func() error{
					func() error { return h.srv.SendToSocket(ctx, ow.SocketID, []byte(p.payload)) },
					func() error { return h.srv.Broadcast(ctx, []byte(p.payload)) },
					func() error { return h.srv.BroadcastExcept(ctx, "nobody", []byte(p.payload)) },
				} {
					if err := send(); err != nil {
						t.Fatal(err)
					}
				}
				next(c, p.name)
			}
			for _, p := range allowedPayloads {
				id := env.publish(t, "u", p)
				expectText(t, c, `{"inbox_id":"`+id+`",`+p[1:], p)
				if err := h.srv.Broadcast(ctx, []byte(p)); err != nil {
					t.Fatal(err)
				}
				expectText(t, c, p, p)
				expectText(t, other, p, p)
			}
			// Each reserved payload was published 4 times, and dropped once each time.
			if got, want := h.metric(`herald_messages_dropped_total{reason="reserved_type"}`), float64(4*len(reservedPayloads)); got != want {
				t.Errorf("dropped{reason=reserved_type} = %v, want %v", got, want)
			}

			// Nor is one sent again from the inbox.
			since := env.publish(t, "u", `{"type":"before"}`)
			readInboxFrame(t, c, "before")
			c.Close()
			waitGone(t, h, "u")
			env.publish(t, "u", reservedPayloads[0].payload)
			last := env.publish(t, "u", `{"type":"after"}`)
			c2, _ := h.connectSince("u", since, true)
			if f := readInboxFrame(t, c2, "replayed"); f.Type != "after" || f.InboxID != last {
				t.Fatalf("replayed %s, want only the event after the reserved one", f.raw)
			}
			if f := readInboxFrame(t, c2, "marker"); f.Type != "replay_complete" || f.Count != 1 {
				t.Fatalf("marker %s, want replay_complete with count 1", f.raw)
			}
		})
	}
}
