//go:build linux

package wscore

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// TestMessageReuseUnderPartialWrites: one Message, reset for every message
// while several sockets with small kernel buffers take it (written at once
// while they keep up, partly written and queued once they do not), reaches
// every socket whole and in order. A socket that queued a reference to the
// sender's buffer, or lost or repeated the rest of a partial write, would
// read a message of the wrong content or sequence.
func TestMessageReuseUnderPartialWrites(t *testing.T) {
	k, err := New(Config{Pollers: 2, Writers: 2, MaxQueueBytes: 64 << 20,
		PingInterval: time.Minute, IdleTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ln := listen(t)
	const sockets, messages = 4, 1500
	conns := make([]*Conn, sockets)
	clients := make([]net.Conn, sockets)
	for i := range conns {
		client, s := pair(t, ln)
		_ = s.(*net.TCPConn).SetWriteBuffer(16 << 10)
		_ = client.(*net.TCPConn).SetReadBuffer(32 << 10)
		c, err := k.NewConn(s, &recorder{})
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Start(nil); st != Active || err != nil {
			t.Fatalf("Start = %s, %v", st, err)
		}
		conns[i], clients[i] = c, client
	}
	payload := func(i int) []byte {
		// Sizes vary so that frame boundaries fall anywhere in the
		// kernel buffer; the filler differs from one message to the next.
		return append(fmt.Appendf(nil, "%06d:", i), bytes.Repeat([]byte{'a' + byte(i%26)}, 50+(i*97)%3000)...)
	}
	var wg sync.WaitGroup
	for i, client := range clients {
		wg.Go(func() {
			r := bufio.NewReader(client)
			for n := range messages {
				_ = client.SetReadDeadline(time.Now().Add(20 * time.Second))
				f, err := ws.ReadFrame(r)
				if err != nil {
					t.Errorf("socket %d, message %d: %v", i, n, err)
					return
				}
				if want := payload(n); f.Header.OpCode != ws.OpText || !bytes.Equal(f.Payload, want) {
					t.Errorf("socket %d, message %d: got %v %.20q… (%d bytes), want %.20q… (%d bytes)",
						i, n, f.Header.OpCode, f.Payload, len(f.Payload), want, len(want))
					return
				}
			}
		})
	}
	var m Message
	for n := range messages {
		m.Reset(payload(n), Now())
		for i, c := range conns {
			if err := c.SendMessage(&m); err != nil {
				t.Fatalf("socket %d, message %d: %v", i, n, err)
			}
		}
	}
	wg.Wait()
	for _, c := range conns {
		c.Drop(EndClientGone)
	}
}
