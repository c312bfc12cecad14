package replay

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the scripts of concurrent calls to Redis in one pipeline:
// one round trip, and one read and one write for Redis, for every call
// that arrived while the previous pipeline was out. It keeps no goroutine:
// the first caller that finds no pipeline out sends one with whatever is
// queued (its own call first); when it has its answers it hands the next
// pipeline to the first call queued meanwhile, whose caller sends it.
type batcher struct {
	client  redis.UniversalClient
	timeout time.Duration // bounds one pipeline

	mu    sync.Mutex
	busy  bool    // guarded by mu; a pipeline is out, or about to be
	queue []*call // guarded by mu; calls waiting for the next pipeline
}

// call is one command in a pipeline. done is closed when the command has
// its answer, or when its caller is to send the next pipeline (lead).
type call struct {
	cmd  redis.Cmder
	done chan struct{}
	lead bool // set under batcher.mu before done is closed
}

// do runs cmd in a pipeline shared with the calls of other goroutines. It
// waits for cmd's answer whatever ctx does (a pipeline lasts at most the
// batcher's timeout), so that the pipeline it may have to send is sent.
func (b *batcher) do(ctx context.Context, cmd redis.Cmder) {
	c := &call{cmd: cmd, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.busy {
		b.mu.Unlock()
		<-c.done
		if !c.lead {
			return
		}
		b.mu.Lock()
	}
	b.busy = true
	batch := b.queue
	b.queue = nil
	b.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	pipe := b.client.Pipeline()
	for _, q := range batch {
		_ = pipe.Process(ctx, q.cmd)
	}
	_, _ = pipe.Exec(ctx) // each command keeps its own answer or error
	cancel()

	b.mu.Lock()
	var next *call
	if len(b.queue) > 0 {
		next = b.queue[0]
		next.lead = true
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	for _, q := range batch {
		if q != c {
			close(q.done)
		}
	}
	if next != nil {
		close(next.done)
	}
}
