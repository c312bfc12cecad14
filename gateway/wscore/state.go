package wscore

// State is where a socket is in its life. Every change goes through
// transition; Conn.moveLocked applies it under Conn.mu.
//
//	Handshake ──start──▶ Active ──close/shed/peerClose──▶ Closing ──teardown──▶ Closed
//	    │                                                    ▲
//	    └───────────────────close/shed───────────────────────┘
//
// teardown leads from every state but Closed to Closed.
type State uint8

const (
	// Handshake: the socket belongs to the goroutine running its handshake.
	// Output is held (nothing is written) and nothing is read.
	Handshake State = iota
	// Active: the socket was handed to its poller by Start; input is read
	// and output flows.
	Active
	// Closing: a close frame is queued; nothing but it and the frames
	// before it goes out. A socket closed during its handshake is Closing
	// before it was started: it holds only its close frame.
	Closing
	// Closed: the descriptor is closed and the socket unregistered.
	Closed
)

func (s State) String() string {
	switch s {
	case Handshake:
		return "handshake"
	case Active:
		return "active"
	case Closing:
		return "closing"
	case Closed:
		return "closed"
	}
	return "invalid"
}

// event is something that happens to a socket.
type event uint8

const (
	evStart     event = iota // the handshake is over: hand the socket to its poller
	evClose                  // the server closes: close frame after the queued output
	evShed                   // the server closes now: output not yet started is dropped
	evPeerClose              // the client's close frame arrived
	evTeardown               // the descriptor is closed
	numEvents
)

func (e event) String() string {
	return [...]string{"start", "close", "shed", "peerClose", "teardown"}[e]
}

// transition is the socket's state machine: the state after ev in from, or
// ok == false when ev is not allowed in from (and the caller must do
// nothing). start in Closing keeps it Closing: a socket closed during its
// handshake is still handed to its poller, to write its close frame, but
// it is never active.
func transition(from State, ev event) (to State, ok bool) {
	switch ev {
	case evStart:
		switch from {
		case Handshake:
			return Active, true
		case Closing:
			return Closing, true
		}
	case evClose, evShed:
		if from == Handshake || from == Active {
			return Closing, true
		}
	case evPeerClose:
		if from == Active || from == Closing {
			return Closing, true
		}
	case evTeardown:
		if from != Closed {
			return Closed, true
		}
	}
	return from, false
}
