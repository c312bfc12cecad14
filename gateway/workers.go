package gateway

import "time"

// workers runs the admitted handshakes' work on goroutines that outlive
// one handshake. A new goroutine's stack grows, by copying, through the
// Redis client's calls: a storm paid that once per handshake. A worker
// with nothing to do for workerIdle ends, and all end with the server.
// Their number follows the handshakes at work, which admission bounds.
type workers struct {
	work chan func()     // unbuffered: taken only by a worker waiting for it
	stop <-chan struct{} // closed when the server stops
}

const workerIdle = 5 * time.Second

func newWorkers(stop <-chan struct{}) *workers {
	return &workers{work: make(chan func()), stop: stop}
}

// run runs f on a waiting worker, or on a new one. It never blocks.
func (p *workers) run(f func()) {
	select {
	case p.work <- f:
	default:
		go p.loop(f)
	}
}

func (p *workers) loop(f func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		f()
		t.Reset(workerIdle)
		select {
		case f = <-p.work:
		case <-t.C:
			return
		case <-p.stop:
			return
		}
	}
}
