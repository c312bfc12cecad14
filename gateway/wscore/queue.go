package wscore

// outQueue is one socket's output: frames waiting for the wire, oldest
// first, counted in bytes. A write worker takes frames for one writev
// (take), writes them without the socket's lock, and then reports what the
// kernel took (consume). Frames handed to a writev under way are in flight:
// dropUnstarted keeps them, and the frame that is partly written, so that
// the byte stream stays valid. The zero value is an empty queue; an empty
// queue holds no buffer. It is guarded by Conn.mu.
type outQueue struct {
	frames   []Frame // oldest first
	head     int     // bytes of frames[0] already written
	bytes    int     // bytes not yet written
	inFlight int     // frames at the front handed to a writev under way
}

// frameCharge is what a queued frame costs besides its bytes: its slice
// entry (24 bytes) and the spare capacity the slice grows by, rounded up.
// It is charged against the cap because a broadcast frame's bytes are
// shared by every socket, while each queue pays for its own entries: a
// burst of tiny messages must not grow a queue far past its cap.
const frameCharge = 64

// charge returns what the queue counts against its cap.
func (q *outQueue) charge() int { return q.bytes + len(q.frames)*frameCharge }

// len returns the number of frames not fully written.
func (q *outQueue) len() int { return len(q.frames) }

// push appends f.
func (q *outQueue) push(f Frame) {
	q.frames = append(q.frames, f)
	q.bytes += len(f.b)
}

// take appends to iov the unwritten bytes of up to max frames from the
// front, marks them in flight, and returns iov and how many bytes it holds.
func (q *outQueue) take(iov [][]byte, max int) ([][]byte, int) {
	n := min(len(q.frames), max)
	if n == 0 {
		return iov, 0
	}
	iov = append(iov, q.frames[0].b[q.head:])
	total := len(q.frames[0].b) - q.head
	for _, f := range q.frames[1:n] {
		iov = append(iov, f.b)
		total += len(f.b)
	}
	q.inFlight = n
	return iov, total
}

// consume drops n written bytes from the front and ends the write in
// flight. It returns how many message frames (those with a receipt time,
// see MessageFrame) it completed and the earliest receipt time among them.
func (q *outQueue) consume(n int) (done int, oldest int64) {
	q.inFlight = 0
	q.bytes -= n
	i := 0
	for n > 0 && i < len(q.frames) {
		left := len(q.frames[i].b) - q.head
		if n < left {
			q.head += n
			break
		}
		n -= left
		q.head = 0
		if at := q.frames[i].stamp(); at != 0 {
			if done == 0 || at < oldest {
				oldest = at
			}
			done++
		}
		i++
	}
	if i == len(q.frames) {
		clear(q.frames)
		q.frames = nil // an idle socket keeps no buffer
		q.head, q.bytes = 0, 0
		return done, oldest
	}
	clear(q.frames[:i])
	q.frames = q.frames[i:]
	return done, oldest
}

// dropUnstarted discards the frames no write has started: all but the ones
// in flight and a partly written first frame.
func (q *outQueue) dropUnstarted() {
	keep := q.inFlight
	if q.head > 0 {
		keep = max(keep, 1)
	}
	keep = min(keep, len(q.frames))
	clear(q.frames[keep:])
	q.frames = q.frames[:keep]
	if keep == 0 {
		q.frames = nil
	}
	q.bytes = -q.head
	for _, f := range q.frames {
		q.bytes += len(f.b)
	}
}

// reset empties the queue.
func (q *outQueue) reset() {
	clear(q.frames)
	*q = outQueue{}
}
