package scenario

import (
	"context"
	"time"

	"github.com/herald-gw/herald/loadtest/client"
)

// publisher PUBLISHes numbered fan-out messages to this worker's users. A
// user's messages come from one goroutine at a time, so each socket must see
// them in order.
type publisher struct {
	f     *client.Fleet
	size  int
	next  int // round-robin position in f.Users()
	buf   []byte
	sent  uint64
	errs  uint64
	pipe  [][]byte
	chans []string
}

// run publishes at rate messages per second (0: as fast as Redis answers)
// until ctx ends, to the users pick accepts.
func (pb *publisher) run(ctx context.Context, rate float64, pick func(*client.User) bool) {
	rdb, users := pb.f.Redis(), pb.f.Users()
	if rdb == nil || len(users) == 0 {
		return
	}
	start := time.Now()
	for ctx.Err() == nil {
		n := 128
		if rate > 0 {
			due := uint64(rate * time.Since(start).Seconds())
			if due <= pb.sent {
				time.Sleep(2 * time.Millisecond)
				continue
			}
			n = int(min(due-pb.sent, 1000))
		}
		pipe := rdb.Pipeline()
		k := 0
		for tries := 0; k < n && tries < n+len(users); tries++ {
			u := users[pb.next]
			pb.next = (pb.next + 1) % len(users)
			if !pick(u) {
				continue
			}
			seq := u.NextSeq()
			pb.buf = client.AppendFanout(pb.buf[:0], seq, time.Now().UnixNano(), pb.size)
			pipe.Publish(ctx, u.Channel(), string(pb.buf))
			k++
		}
		if k == 0 {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if _, err := pipe.Exec(context.WithoutCancel(ctx)); err != nil {
			pb.errs += uint64(k)
		}
		pb.sent += uint64(k)
	}
}
