package wscore

import (
	"sync"
)

// writePool flushes sockets that have queued output. A socket is in the pool's
// queue at most once (Conn.scheduled), so the queue never holds more entries
// than there are sockets. Workers never block on a socket: a write that
// would block hands the socket to its poller, which reports when it can take
// more.
type writePool struct {
	mu     sync.Mutex
	cond   sync.Cond
	queue  []*Conn // sockets waiting for a worker, oldest at head; guarded by mu
	head   int     // index of the oldest entry; guarded by mu
	closed bool    // guarded by mu
	wg     sync.WaitGroup
}

const (
	maxIovecs   = 256 // frames handed to one writev
	flushRounds = 8   // writev calls for one socket before it yields its worker
)

func newWritePool(workers int) *writePool {
	w := &writePool{}
	w.cond.L = &w.mu
	w.wg.Add(workers)
	for range workers {
		go w.work()
	}
	return w
}

// schedule queues c for a worker. The caller has set c.scheduled.
func (w *writePool) schedule(c *Conn) {
	w.mu.Lock()
	if !w.closed {
		w.queue = append(w.queue, c)
		w.cond.Signal()
	}
	w.mu.Unlock()
}

func (w *writePool) next() *Conn {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head == len(w.queue) && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return nil
	}
	c := w.queue[w.head]
	w.queue[w.head] = nil
	w.head++
	switch {
	case w.head == len(w.queue):
		w.queue, w.head = w.queue[:0], 0
	case w.head > 1024 && w.head > len(w.queue)/2:
		n := copy(w.queue, w.queue[w.head:])
		clear(w.queue[n:])
		w.queue, w.head = w.queue[:n], 0
	}
	return c
}

func (w *writePool) work() {
	defer w.wg.Done()
	b := newWriteBatch()
	for {
		c := w.next()
		if c == nil {
			return
		}
		c.flush(b)
	}
}

// writeBatch is a write worker's scratch for one writev: the frames' bytes
// and the iovec array handed to the kernel.
type writeBatch struct {
	bufs [][]byte
	iov  []iovec
}

func newWriteBatch() *writeBatch {
	return &writeBatch{bufs: make([][]byte, 0, maxIovecs), iov: make([]iovec, maxIovecs)}
}

// close stops the workers once they finish the socket in hand. Sockets still
// queued are left unflushed: the caller is shutting down.
func (w *writePool) close() {
	w.mu.Lock()
	w.closed = true
	clear(w.queue)
	w.queue = nil
	w.cond.Broadcast()
	w.mu.Unlock()
	w.wg.Wait()
}

// flush writes c's queued frames until they are all out, the kernel buffer
// is full, or the socket has had its share of the worker. The write itself
// runs without c.mu; the frames it covers are in flight, so that a shed
// meanwhile keeps them.
func (c *Conn) flush(b *writeBatch) {
	for round := 0; ; round++ {
		c.mu.Lock()
		if c.state == Closed {
			c.scheduled = false
			c.mu.Unlock()
			return
		}
		if c.out.len() == 0 {
			c.scheduled = false
			c.stalled = 0
			done := c.state == Closing && c.endAfter
			c.mu.Unlock()
			if done {
				c.teardown(nil)
			}
			return
		}
		if round == flushRounds {
			c.core.writers.schedule(c) // still scheduled: go to the back of the line
			c.mu.Unlock()
			return
		}
		var total int
		b.bufs, total = c.out.take(b.bufs[:0], maxIovecs)
		c.mu.Unlock()

		n, err := c.sock.writev(b.bufs, b.iov)
		clear(b.bufs)

		c.mu.Lock()
		frames, oldest := c.out.consume(n)
		if frames > 0 {
			c.mu.Unlock()
			c.h.OnWritten(frames, oldest)
			c.mu.Lock()
		}
		if c.state == Closed {
			c.scheduled = false
			c.mu.Unlock()
			return
		}
		if err == nil && n == total {
			c.stalled = 0 // progress: a later wait for room starts a new stall
			c.mu.Unlock()
			continue
		}
		if err != nil && err != errWouldBlock {
			c.mu.Unlock()
			c.teardown(EndWriteError) // ErrClosed included: only teardown closes the descriptor
			return
		}
		// The kernel buffer is full: wait for the poller to report room.
		// The interest is armed under c.mu, like every epoll change.
		if n > 0 || c.stalled == 0 {
			c.stalled = Now()
		}
		c.scheduled = false
		if err := c.waitWritableLocked(); err != nil {
			c.mu.Unlock()
			c.teardown(EndWriteError)
			return
		}
		c.mu.Unlock()
		return
	}
}
