package client

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/auth"
	"github.com/herald-gw/herald/fanout/publish"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		name string
		q    float64
		want float64 // ms
	}{
		{"min", 0, 1},
		{"p50", 0.5, 500},
		{"p99", 0.99, 990},
		{"p999", 0.999, 999},
		{"max", 1, 1000},
	}
	for _, tc := range tests {
		got := h.Quantile(tc.q)
		if got < tc.want*0.98 || got > tc.want*1.02 {
			t.Errorf("%s = %.2f ms, want %.0f ms ±2%%", tc.name, got, tc.want)
		}
	}
	// Merging through the wire form changes nothing.
	var m Histogram
	h.Sparse().MergeInto(&m)
	if m.Count() != 1000 || m.Quantile(0.99) != h.Quantile(0.99) || m.Quantile(1) != 1000 {
		t.Errorf("merged histogram: n %d p99 %.2f max %.2f", m.Count(), m.Quantile(0.99), m.Quantile(1))
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a median")
	}
}

func TestFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 5, 125, 126, 300, 70000} {
		payload := make([]byte, size)
		for i := range payload {
			payload[i] = byte(i)
		}
		// A client frame must be masked and read back by gobwas as sent.
		f := appendClientFrame(nil, ws.OpText, payload, rng)
		h, err := ws.ReadHeader(bytesReader(f))
		if err != nil || !h.Masked || h.Length != int64(size) || h.OpCode != ws.OpText {
			t.Fatalf("size %d: header %+v %v", size, h, err)
		}
		// A server frame (unmasked) parses only when whole.
		srv := ws.MustCompileFrame(ws.NewTextFrame(payload))
		if _, _, n, err := nextFrame(srv[:len(srv)-1]); n != 0 || err != nil {
			t.Fatalf("size %d: partial frame parsed: n %d err %v", size, n, err)
		}
		h, p, n, err := nextFrame(srv)
		if err != nil || n != len(srv) || h.OpCode != ws.OpText || !h.Fin || len(p) != size {
			t.Fatalf("size %d: op %d fin %v len %d n %d err %v", size, h.OpCode, h.Fin, len(p), n, err)
		}
	}
	if _, _, _, err := nextFrame(appendClientFrame(nil, ws.OpText, []byte("x"), rng)); err == nil {
		t.Error("a masked server frame was accepted")
	}
}

func TestFanoutPayload(t *testing.T) {
	for _, size := range []int{0, 60, 100, 1000} {
		b := AppendFanout(nil, 42, 1764150000123456789, size)
		if size > 60 && len(b) != size {
			t.Errorf("size %d: payload is %d bytes: %s", size, len(b), b)
		}
		seq, ok := leadingUint(b[len(prefixFanout):])
		ts, ok2 := fieldUint(b, keyT)
		if !ok || !ok2 || seq != 42 || ts != 1764150000123456789 {
			t.Errorf("size %d: parsed seq %d t %d from %s", size, seq, ts, b)
		}
	}
}

// TestSocketAccounting pins how a socket counts its messages: expected are
// those numbered after its welcome, lost are those missing when settled.
func TestSocketAccounting(t *testing.T) {
	tests := []struct {
		name                          string
		start                         uint64
		seqs                          []uint64
		top                           uint64
		sent, lost, dups, ooo, gotSet uint64
	}{
		{"in order", 0, []uint64{1, 2, 3}, 3, 3, 0, 0, 0, 0},
		{"gap", 0, []uint64{1, 3}, 3, 3, 1, 0, 0, 0},
		{"tail missing", 0, []uint64{1, 2}, 4, 4, 2, 0, 0, 0},
		{"duplicate", 0, []uint64{1, 2, 2, 3}, 3, 3, 0, 1, 0, 0},
		{"reordered", 0, []uint64{1, 3, 2}, 3, 3, 0, 0, 1, 0},
		{"published before the welcome", 5, []uint64{4, 5, 6, 7}, 7, 2, 0, 0, 0, 0},
		{"late and old", 5, []uint64{6, 7, 5}, 7, 2, 0, 0, 1, 0},
		{"nothing due", 3, nil, 3, 0, 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTally()
			s := &Socket{startSeq: tc.start, maxSeq: tc.start}
			for _, q := range tc.seqs {
				s.onSeq(q, tl)
			}
			s.settle(tc.top, tl)
			if tl.sent != tc.sent || tl.lost != tc.lost || tl.dups != tc.dups || tl.ooo != tc.ooo {
				t.Errorf("sent %d lost %d dups %d ooo %d; want %d %d %d %d", tl.sent, tl.lost, tl.dups, tl.ooo, tc.sent, tc.lost, tc.dups, tc.ooo)
			}
			if s.startSeq != max(tc.top, s.maxSeq) || s.got != 0 {
				t.Errorf("after settle: start %d got %d", s.startSeq, s.got)
			}
		})
	}
}

func TestCloseStep(t *testing.T) {
	tests := []struct {
		code int
		want nextStep
	}{
		{4000, stop}, {4001, retryNow}, {4002, retryOnce}, {4003, retryNow}, {4008, stop},
		{4009, retryBackoff}, {4029, retryBackoff}, {1001, retryBackoff}, {1006, retryBackoff},
		{1012, retryAfter}, {1013, retryBackoff}, {1002, stop}, {1009, stop},
	}
	for _, tc := range tests {
		if got := closeStep(tc.code); got != tc.want {
			t.Errorf("closeStep(%d) = %d, want %d", tc.code, got, tc.want)
		}
	}
	for attempt := 1; attempt < 12; attempt++ {
		d := backoff(attempt)
		ceil := 250 * time.Millisecond << (attempt - 1)
		ceil = min(ceil, 10*time.Second)
		if d < ceil/2 || d > ceil {
			t.Errorf("backoff(%d) = %s, want in [%s, %s]", attempt, d, ceil/2, ceil)
		}
	}
}

// TestSessionAcceptedByHerald checks the minted session with herald's own
// verifier, for both claim names.
func TestSessionAcceptedByHerald(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, claim := range []string{"sub", "uid"} {
		a, err := auth.New(context.Background(), auth.Config{
			SessionSecret: secret, UserClaim: claim, WSTokenSecret: secret,
		})
		if err != nil {
			t.Fatal(err)
		}
		m := newSessionMinter(secret, claim, time.Now)
		got, err := a.VerifySession(context.Background(), m.mint("lt-7"))
		a.Close()
		if err != nil || got != "lt-7" {
			t.Errorf("claim %s: user %q, err %v", claim, got, err)
		}
	}
}

func TestResyncExcusesLoss(t *testing.T) {
	tl := newTally()
	s := &Socket{}
	s.onSeq(1, tl)
	s.onSeq(2, tl)
	s.excuse(6, tl) // 3…6 missing, then resync
	s.onSeq(7, tl)
	s.settle(9, tl) // 8, 9 missing
	if tl.excused != 4 || tl.lost != 2 || tl.sent != 9 || tl.lostSockets != 1 {
		t.Errorf("excused %d lost %d sent %d lost sockets %d; want 4 2 9 1", tl.excused, tl.lost, tl.sent, tl.lostSockets)
	}
}

func TestStormTrack(t *testing.T) {
	const storm = 77
	type ev struct {
		op    string // "ev", "marker", "resync", "session"
		storm uint64
		k     uint64
	}
	e := func(k uint64) ev { return ev{"ev", storm, k} }
	marker := func(n uint64) ev { return ev{"marker", 0, n} }
	tests := []struct {
		name      string
		away      bool
		evs       []ev
		ok        bool
		missing   uint64
		dups, ooo uint64
		resync    bool
		done      bool
	}{
		{"replayed", true, []ev{e(1), e(2), e(3), marker(3)}, true, 0, 0, 0, false, true},
		{"no marker", true, []ev{e(1), e(2), e(3)}, false, 0, 0, 0, false, false},
		{"gap", true, []ev{e(1), e(3), marker(2)}, false, 1, 0, 0, false, true},
		{"duplicate", true, []ev{e(1), e(2), e(2), e(3), marker(4)}, false, 0, 1, 0, false, true},
		{"reordered", true, []ev{e(2), e(1), e(3), marker(3)}, false, 0, 0, 1, false, true},
		{"after the marker", true, []ev{e(1), e(2), marker(2), e(3)}, false, 0, 0, 1, false, true},
		{"wrong count", true, []ev{e(1), e(2), e(3), marker(4)}, false, 0, 0, 0, false, true},
		{"resync", true, []ev{{op: "resync"}}, false, 3, 0, 0, true, true},
		{"broker resync after the replay", true, []ev{e(1), e(2), e(3), marker(3), {op: "resync"}}, true, 0, 0, 0, false, true},
		{"another storm's events", true, []ev{{"ev", storm - 1, 1}, e(1), e(2), e(3), marker(3)}, true, 0, 0, 0, false, true},
		{"out of range", true, []ev{e(1), e(2), e(3), e(4), marker(4)}, false, 0, 0, 0, false, true},
		{"a replay over two sessions", true, []ev{e(1), marker(1), {op: "session"}, e(2), e(3), marker(2)}, false, 0, 0, 2, false, true},
		{"stayed, live", false, []ev{e(1), e(2), e(3)}, true, 0, 0, 0, false, false},
		{"stayed, one short", false, []ev{e(1), e(3)}, false, 1, 0, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newStormTrack(storm, 3, tc.away)
			for _, x := range tc.evs {
				switch x.op {
				case "ev":
					tr.onEvent(x.storm, x.k)
				case "marker":
					tr.onMarker(x.k)
				case "resync":
					tr.onResync()
				case "session":
					tr.sess = 0
				}
			}
			if tr.ok() != tc.ok || tr.missing() != tc.missing || tr.dups != tc.dups || tr.ooo != tc.ooo || tr.resync != tc.resync || tr.done != tc.done {
				t.Errorf("ok %v missing %d dups %d ooo %d resync %v done %v; want %v %d %d %d %v %v",
					tr.ok(), tr.missing(), tr.dups, tr.ooo, tr.resync, tr.done, tc.ok, tc.missing, tc.dups, tc.ooo, tc.resync, tc.done)
			}
			var part StormPart
			part.addTrack(tr)
			outcomes := part.Replayed + part.Wrong + part.Resyncs + part.NotReplayed + part.StayOK + part.StayBad
			if outcomes != 1 || (part.Replayed+part.StayOK == 1) != tc.ok {
				t.Errorf("outcome counted %+v", part)
			}
		})
	}
}

// TestInboxFrames: the load tester reads inbox frames as herald builds
// them (publish.InboxFrame), and the ids of welcome, replay_complete and
// resync frames.
func TestInboxFrames(t *testing.T) {
	payload := AppendStormEvent(nil, 1764150000123456789, 7, 1764150000999999999, 100)
	if len(payload) != 100 || !bytes.HasPrefix(payload, prefixStormEv) {
		t.Fatalf("payload %d bytes: %s", len(payload), payload)
	}
	frame := publish.InboxFrame("1764150000000-3", payload)
	id, rest, ok := inboxFrame(frame)
	if !ok || string(id) != "1764150000000-3" || !bytes.HasPrefix(rest, typeStormEv) {
		t.Fatalf("inboxFrame(%s) = %q, %q, %v", frame, id, rest, ok)
	}
	storm, ok1 := leadingUint(rest[len(typeStormEv):])
	k, ok2 := fieldUint(rest, keyK)
	if !ok1 || !ok2 || storm != 1764150000123456789 || k != 7 {
		t.Errorf("storm %d k %d from %s", storm, k, rest)
	}
	for _, tc := range []struct{ frame, id string }{
		{`{"type":"welcome","socket_id":"n.1","user_id":"u","heartbeat_s":30,"inbox_id":"5-0"}`, "5-0"},
		{`{"type":"welcome","socket_id":"n.1","user_id":"u","heartbeat_s":30}`, ""},
		{`{"type":"replay_complete","count":10,"inbox_id":"9-1"}`, "9-1"},
		{`{"type":"resync","inbox_id":"9-2"}`, "9-2"},
		{`{"type":"resync"}`, ""},
	} {
		if got := string(fieldInboxID([]byte(tc.frame))); got != tc.id {
			t.Errorf("fieldInboxID(%s) = %q, want %q", tc.frame, got, tc.id)
		}
	}
	if _, _, ok := inboxFrame([]byte(`{"type":"lt","s":1}`)); ok {
		t.Error("a plain fan-out frame was taken for an inbox frame")
	}
}
