package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/herald-gw/herald/fanout/inbox"
	"github.com/herald-gw/herald/fanout/publish"
	"github.com/herald-gw/herald/gateway/wscore"
	"github.com/herald-gw/herald/replay"
)

// The inbox catch-up in the handshake.
//
// With an inbox (Config.Inbox), a socket's handshake, once the broker has
// confirmed the user's subscription, reads the inbox and queues, before the
// socket is activated:
//
//	without since: the welcome, with "inbox_id" = the inbox head;
//	with since:    the welcome, the events after since (the same frames as
//	               live ones), then {"type":"replay_complete","count":N,
//	               "inbox_id":head}, or, when the gap cannot be closed,
//	               {"type":"resync","inbox_id":head} and no event;
//
// then the frames fan-out gave the socket meanwhile. From the registration
// to that point a gate holds them: fan-out (delivery.go) asks hold before it
// queues a user or broadcast frame to a socket. Held inbox frames whose id
// is at or before the head are dropped (the read included them, or they
// belong before the welcome's position); the others, and frames without
// an id, follow in arrival order. The head is read after the subscription
// is confirmed, so an event newer than the head is always delivered live.
//
// An event published just before the read may still be on its way from
// Redis when the read returns. So after the read the handshake publishes a
// sync message on the user's own channel and keeps the gate until that
// message comes back: everything published before the read arrives before
// it, on the same channel. The sync message is never written to a socket.
// An inbox that implements inbox.SyncReader (both of herald's) publishes
// it in the read's own atomic step, which saves the handshake a round trip.
// One that implements inbox.TokenReader (both) also consumes the socket's
// WS token in that step: with Redis, the handshake's one script. The token
// is then spent once the subscription is confirmed, and a used or expired
// token is refused (4003, 4001) only then.

// inboxState is the Server's catch-up metrics. The gates themselves are
// the sockets' own (Conn.gate).
type inboxState struct {
	catchUps *prometheus.CounterVec // by result; herald_inbox_replays_total
	caughtUp prometheus.Counter     // herald_inbox_replayed_events_total
}

// inboxGate holds one socket's frames during its catch-up. The handshake
// makes it and sets it in Conn.gate before it registers the socket, and
// takes it out once the catch-up is queued (end).
type inboxGate struct {
	limit  int           // bytes held before the socket is shed; read-only
	synced chan struct{} // closed when the socket's sync message arrives; never nil

	mu       sync.Mutex
	held     []heldFrame // guarded by mu
	bytes    int         // guarded by mu
	overflow bool        // guarded by mu; held passed limit: the socket is shed
	done     bool        // guarded by mu; the catch-up is queued: frames go straight to the socket
}

type heldFrame struct {
	id    inbox.StreamID
	hasID bool
	frame wscore.Frame
}

// The values of herald_inbox_replays_total's result label.
const (
	catchUpHead   = "head"     // no since: the welcome carries the head
	catchUpDone   = "replayed" // since given, the gap closed
	catchUpResync = "resync"   // since given, the gap could not be closed
)

func newInboxState(reg prometheus.Registerer) (*inboxState, error) {
	in := &inboxState{
		catchUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_inbox_replays_total",
			Help: "Handshakes that read the inbox, by result: head (no since), replayed, resync.",
		}, []string{"result"}),
		caughtUp: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_inbox_replayed_events_total", Help: "Inbox events replayed to reconnecting sockets.",
		}),
	}
	for _, r := range []string{catchUpHead, catchUpDone, catchUpResync} {
		in.catchUps.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{in.catchUps, in.caughtUp} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register inbox metrics: %w", err)
			}
		}
	}
	return in, nil
}

func newInboxGate(limit int) *inboxGate {
	return &inboxGate{limit: limit, synced: make(chan struct{})}
}

// hold is fan-out's hook: it reports whether it took frame (whose message
// is payload; nil for a broadcast) for c's catch-up; if not, the caller
// queues it as usual. A sync message is always taken: it is never written.
// Fan-out's own fast path loads c.gate itself and calls the gate's hold.
func (c *Conn) hold(payload []byte, frame wscore.Frame) bool {
	if g := c.gate.Load(); g != nil {
		return g.hold(c.id, payload, frame)
	}
	return bytes.HasPrefix(payload, syncPrefix)
}

// hold takes frame for the catch-up of the socket socketID, whose gate g
// is (see Conn.hold).
func (g *inboxGate) hold(socketID string, payload []byte, frame wscore.Frame) bool {
	sync := bytes.HasPrefix(payload, syncPrefix)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case sync:
		if !g.done && bytes.Equal(payload, syncMessage(socketID)) {
			select {
			case <-g.synced:
			default:
				close(g.synced)
			}
		}
		return true
	case g.done:
		return false
	case g.overflow:
		return true
	}
	h := heldFrame{frame: frame}
	if id, ok := publish.InboxFrameID(payload); ok {
		h.id, h.hasID = inbox.ParseStreamID(id)
	}
	g.bytes += frame.Len()
	if g.bytes > g.limit {
		g.overflow = true
		clear(g.held)
		g.held = nil
		return true
	}
	g.held = append(g.held, h)
	return true
}

// end takes the gate out of c. With flush, it first queues the held frames
// that come after head; without, it drops them (the handshake failed). It
// reports whether the gate overflowed.
func (g *inboxGate) end(c *Conn, flush bool, head inbox.StreamID) (overflow bool) {
	g.mu.Lock()
	g.done = true
	overflow = g.overflow
	if flush && !overflow {
		for _, h := range g.held {
			if h.hasID && h.id.Compare(head) <= 0 {
				continue
			}
			c.enqueue(h.frame)
		}
	}
	clear(g.held)
	g.held = nil
	g.mu.Unlock()
	c.gate.Store(nil)
	return overflow
}

// readInbox is the handshake's catch-up step, once the user's subscription
// is confirmed: it reads the inbox and waits for the socket's sync message
// (see the top of this file). It returns why the socket is refused, or nil.
func (h *handshake) readInbox(ctx context.Context) *Disconnect {
	s, c := h.s, h.c
	since := h.in.since
	if h.in.hasSince && since == "" {
		since = "-" // malformed: a gap
	}
	var err error
	rs, syncInRead := s.cfg.Inbox.(inbox.SyncReader)
	tr, withToken := s.cfg.Inbox.(inbox.TokenReader)
	withToken = withToken && !h.spent
	switch {
	case withToken: // the token, the read and the sync message in one step
		h.read, err = tr.ConsumeReadSync(ctx, s.cfg.Replay, h.use(), since, syncMessage(c.id))
		if errors.Is(err, replay.ErrUnavailable) || errors.Is(err, replay.ErrExpired) || errors.Is(err, replay.ErrReused) {
			return h.refuseToken(err)
		}
		syncInRead = true
	case syncInRead: // the read publishes the sync message itself
		h.read, err = rs.ReadSync(ctx, c.user, since, syncMessage(c.id))
	default:
		h.read, err = s.cfg.Inbox.Read(ctx, c.user, since)
	}
	if err != nil {
		s.log.Warn("socket refused: inbox unreadable", zap.String("user", c.user), zap.Error(err))
		return DisconnectTryAgainLater
	}
	head, ok := inbox.ParseStreamID(h.read.Head)
	if !ok {
		s.log.Error("socket refused: inbox head is not a stream id", zap.String("user", c.user), zap.String("head", h.read.Head))
		return DisconnectTryAgainLater
	}
	h.head = head
	if !syncInRead {
		if err := s.broker.Publish(ctx, publish.User(c.user), syncMessage(c.id)); err != nil {
			s.log.Warn("socket refused: cannot publish the inbox sync", zap.String("user", c.user), zap.Error(err))
			return DisconnectTryAgainLater
		}
	}
	select {
	case <-h.gate.synced:
		return nil
	case <-s.drainCh:
		return DisconnectServiceRestart
	case <-ctx.Done():
		s.log.Warn("socket refused: inbox sync not received in time", zap.String("user", c.user))
		return DisconnectTryAgainLater
	}
}

// queueCatchUp queues the missed events and their marker, or a resync when
// the gap cannot be closed. A catch-up that would take more than half the
// socket's queue is a gap too: the client refetches instead of being shed.
func (s *Server) queueCatchUp(c *Conn, rd inbox.Result) {
	var frames []wscore.Frame
	size := 0
	if !rd.Gap {
		frames = make([]wscore.Frame, 0, len(rd.Events))
		for _, e := range rd.Events {
			f := publish.InboxFrame(e.ID, e.Payload)
			// What fan-out would not relay live is not caught up either
			// (and counted the same way).
			switch {
			case len(f) > s.maxRelay:
				s.metrics.dropped[dropTooLarge].Inc()
				continue
			case !utf8.Valid(f):
				s.metrics.dropped[dropInvalidUTF8].Inc()
				continue
			case reservedType(f):
				s.metrics.dropped[dropReservedType].Inc()
				continue
			}
			frames = append(frames, wscore.TextFrame(f))
			size += frames[len(frames)-1].Len()
		}
	}
	if rd.Gap || size > s.cfg.MaxQueueBytes/2 {
		c.enqueue(inboxMarker(struct {
			Type    string `json:"type"`
			InboxID string `json:"inbox_id"`
		}{"resync", rd.Head}))
		s.inbox.catchUps.WithLabelValues(catchUpResync).Inc()
		return
	}
	for _, f := range frames {
		c.enqueue(f)
	}
	c.enqueue(inboxMarker(struct {
		Type    string `json:"type"`
		Count   int    `json:"count"`
		InboxID string `json:"inbox_id"`
	}{"replay_complete", len(frames), rd.Head}))
	s.inbox.catchUps.WithLabelValues(catchUpDone).Inc()
	s.inbox.caughtUp.Add(float64(len(frames)))
}

// syncPrefix starts every sync message; hold keeps them all from sockets.
var syncPrefix = []byte(`{"type":"herald_inbox_sync","socket_id":"`)

// syncMessage is the sync message of the socket socketID.
func syncMessage(socketID string) []byte {
	return append(append(bytes.Clone(syncPrefix), socketID...), `"}`...)
}

func inboxMarker(v any) wscore.Frame {
	b, _ := json.Marshal(v)
	return wscore.TextFrame(b)
}
