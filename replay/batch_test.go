package replay

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// pipeHook records the size of every pipeline and, once armed, holds the
// next one until released.
type pipeHook struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	armed   bool  // guarded by mu
	sizes   []int // guarded by mu
}

func (h *pipeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		h.sizes = append(h.sizes, len(cmds))
		armed := h.armed
		h.mu.Unlock()
		if armed {
			h.once.Do(func() { <-h.release })
		}
		return next(ctx, cmds)
	}
}

// TestRedisBatch: the scripts of calls made while a pipeline is out go
// together in the next one, each with its own answer.
func TestRedisBatch(t *testing.T) {
	testenv.NoLeaks(t)
	rd := testenv.StartRedis(t)
	rd.WaitUptime()
	client := rd.Client()
	hook := &pipeHook{release: make(chan struct{})}
	client.AddHook(hook)
	s := mustRedis(NewRedis(client, RedisConfig{Timeout: 10 * time.Second}))
	defer s.Close()
	ctx := context.Background()
	used := newJTI()
	if !mustConsume(t, s, used, time.Minute) { // also loads the script
		t.Fatal("a fresh jti was reported used")
	}
	hook.mu.Lock()
	hook.sizes = nil
	hook.armed = true
	hook.mu.Unlock()

	const n = 32
	type answer struct {
		first bool
		err   error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the first call: its pipeline is held
		defer wg.Done()
		f, err := s.Consume(ctx, newJTI(), time.Now().Add(time.Second), time.Now().Add(time.Minute))
		answers[0] = answer{f, err}
	}()
	testenv.Eventually(t, 5*time.Second, func() error {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		if len(hook.sizes) == 0 {
			return fmt.Errorf("the first pipeline is not out")
		}
		return nil
	})
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jti := newJTI()
			if i%2 == 0 {
				jti = used // every other call reuses a consumed jti
			}
			f, err := s.Consume(ctx, jti, time.Now().Add(time.Second), time.Now().Add(time.Minute))
			answers[i] = answer{f, err}
		}()
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		if len(s.batch.queue) != n-1 {
			return fmt.Errorf("%d calls queued", len(s.batch.queue))
		}
		return nil
	})
	close(hook.release)
	wg.Wait()
	for i, a := range answers {
		want := i == 0 || i%2 == 1
		if a.err != nil || a.first != want {
			t.Errorf("call %d: got (%v, %v), want (%v, nil)", i, a.first, a.err, want)
		}
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.sizes) != 2 || hook.sizes[0] != 1 || hook.sizes[1] != n-1 {
		t.Errorf("pipelines of %v commands, want [1 %d]", hook.sizes, n-1)
	}
}
