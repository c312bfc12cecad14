package client

// tally is one poller's figures for the current phase. Guarded by the
// poller's mu.
type tally struct {
	delivered  uint64 // fan-out frames received, counted or not
	sent       uint64 // expected deliveries of settled sessions
	lost       uint64
	dups       uint64
	ooo        uint64
	maxLost    uint64
	dupSockets map[*Socket]struct{}
	oooSockets map[*Socket]struct{}

	lostSockets uint64
	excused     uint64    // missing before a resync frame: announced, not lost
	resyncs     uint64    // resync frames received
	latency     Histogram // publish→deliver, whole phase
	interval    Histogram // publish→deliver, since the last progress event
	window      Histogram // publish→deliver, since the last cutWindow (replay)

	handshakes uint64
	handshake  Histogram
	hsWindow   Histogram // handshakes since the last cutWindow (replay)
	stormTimes Histogram // replay: storm start → each away socket's replay_complete or resync

	bcGot uint64
	bc    Histogram

	closed map[string]uint64 // sessions ended, by why
	shed   uint64
}

func newTally() *tally {
	return &tally{
		dupSockets: map[*Socket]struct{}{},
		oooSockets: map[*Socket]struct{}{},
		closed:     map[string]uint64{},
	}
}

// addTo adds t's figures to r.
func (t *tally) addTo(r *Result) {
	r.Delivered += t.delivered
	r.Sent += t.sent
	r.Lost += t.lost
	r.Excused += t.excused
	r.Resyncs += t.resyncs
	r.Dups += t.dups
	r.OutOfOrder += t.ooo
	r.MaxLost = max(r.MaxLost, t.maxLost)
	r.SocketsLost += t.lostSockets
	r.SocketsDup += uint64(len(t.dupSockets))
	r.SocketsOOO += uint64(len(t.oooSockets))
	r.Handshakes += t.handshakes
	r.BroadcastGot += t.bcGot
	r.Shed += t.shed
	if r.Closed == nil {
		r.Closed = map[string]uint64{}
	}
	for k, v := range t.closed {
		r.Closed[k] += v
	}
}
