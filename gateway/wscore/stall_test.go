//go:build linux

package wscore

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestWriteTimeoutSparesProgress: a socket whose client keeps reading, slowly
// but steadily, is never dropped for a write timeout, however long its
// backlog takes to drain. Progress made by a full write followed by a write
// that would block must count as progress.
func TestWriteTimeoutSparesProgress(t *testing.T) {
	const writeTimeout = time.Second
	k, err := New(Config{
		Pollers: 1, Writers: 1,
		PingInterval: time.Minute, IdleTimeout: 2 * time.Minute, // no ping, no idle reap
		WriteTimeout:  writeTimeout,
		MaxQueueBytes: 32 << 20, // 300,000 small frames, each charged frameCharge too
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	// The heartbeat ticks every second with these settings: read for
	// several ticks, and several write timeouts.
	ln := listen(t)
	client, s := pair(t, ln)
	// Small kernel buffers: the backlog stays in the queue, and the
	// socket keeps alternating between writes and waits for room.
	if err := s.(*net.TCPConn).SetWriteBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c, err := k.NewConn(s, rec)
	if err != nil {
		t.Fatal(err)
	}
	frame := TextFrame(make([]byte, 10))
	const frames = 300000 // about 3.6 MB of backlog
	for range frames {
		if err := c.Send(frame); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := c.Start(nil); st != Active || err != nil {
		t.Fatalf("Start = %s, %v", st, err)
	}
	// Read about 1 MB/s in small steps: well under a write timeout between
	// two reads, a few seconds in all.
	want := frames * frame.Len()
	buf := make([]byte, 2048)
	got := 0
	deadline := time.Now().Add(20 * time.Second)
	// The longest time between two reads that returned data: on a loaded
	// machine the reader (or the core's writer) may itself be stalled for
	// a write timeout, and then the client did not read steadily.
	var maxGap time.Duration
	last := time.Now()
	for got < want && time.Now().Before(deadline) {
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := client.Read(buf)
		got += n
		if n > 0 {
			maxGap = max(maxGap, time.Since(last))
			last = time.Now()
		}
		if err == io.EOF || (err != nil && n == 0) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if ends := rec.ends(); len(ends) > 0 {
		if maxGap >= writeTimeout/2 {
			t.Skipf("socket ended with %v, but the machine stalled the transfer for %v (write timeout %v): no steady reading to judge", ends[0], maxGap, writeTimeout)
		}
		t.Fatalf("socket ended with %v after %d of %d bytes read steadily (longest gap %v); write timeouts counted: %d", ends[0], got, want, maxGap, k.Stats().WriteTimeouts)
	}
	if got < want {
		t.Fatalf("read %d of %d bytes", got, want)
	}
	c.Drop(EndClientGone)
}
