package resp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/herald-gw/herald/internal/testenv"
)

// oneByte reads at most one byte a call, so that every reply arrives split
// at every position.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestNext(t *testing.T) {
	tests := []struct {
		name string
		wire string
		kind byte
		args []string // "<nil>" for a null element
	}{
		{"resp2 message", "*3\r\n$7\r\nmessage\r\n$6\r\nuser:1\r\n$5\r\nhello\r\n", KindArray, []string{"message", "user:1", "hello"}},
		{"resp3 pmessage", ">4\r\n$8\r\npmessage\r\n$6\r\nuser:*\r\n$6\r\nuser:1\r\n$2\r\nhi\r\n", KindPush, []string{"pmessage", "user:*", "user:1", "hi"}},
		{"subscribe confirmation", "*3\r\n$9\r\nsubscribe\r\n$9\r\nbroadcast\r\n:1\r\n", KindArray, []string{"subscribe", "broadcast", "1"}},
		{"empty payload", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n", KindArray, []string{"message", "c", ""}},
		{"payload with CRLF", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\na\r\nb\r\n", KindArray, []string{"message", "c", "a\r\nb"}},
		{"simple string", "+OK\r\n", KindSimple, []string{"OK"}},
		{"error", "-ERR wrong\r\n", KindError, []string{"ERR wrong"}},
		{"null bulk in array", "*2\r\n$4\r\npong\r\n$-1\r\n", KindArray, []string{"pong", "<nil>"}},
		{"resp3 null", "_\r\n", KindNull, []string{"<nil>"}},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tt.wire)
			if split {
				src = oneByte{src}
			}
			rd := NewReader(src, Config{BufferBytes: 4}) // grows: every reply is larger
			rep, err := rd.Next()
			if err != nil {
				t.Fatalf("%s (split %v): %v", tt.name, split, err)
			}
			var got []string
			for _, a := range rep.Args {
				if a == nil {
					got = append(got, "<nil>")
				} else {
					got = append(got, string(a))
				}
			}
			if rep.Kind != tt.kind || strings.Join(got, "|") != strings.Join(tt.args, "|") {
				t.Errorf("%s (split %v): got %q %q, want %q %q", tt.name, split, rep.Kind, got, tt.kind, tt.args)
			}
			if _, err := rd.Next(); err != io.EOF {
				t.Errorf("%s (split %v): after the reply got %v, want io.EOF", tt.name, split, err)
			}
		}
	}
}

func TestNextRefuses(t *testing.T) {
	tests := []struct {
		name string
		wire string
		want error
	}{
		{"nested array", "*2\r\n*1\r\n:1\r\n:2\r\n", ErrUnsupported},
		{"bad type byte", "?x\r\n", ErrProtocol},
		{"bad length", "$x\r\nab\r\n", ErrProtocol},
		{"bulk without CRLF", "$2\r\nabcd\r\n", ErrProtocol},
		{"too large", "$100\r\n" + strings.Repeat("a", 100) + "\r\n", ErrTooLarge},
	}
	for _, tt := range tests {
		rd := NewReader(strings.NewReader(tt.wire), Config{BufferBytes: 16, MaxReplyBytes: 64})
		if _, err := rd.Next(); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestAppendCommand(t *testing.T) {
	got := string(AppendCommand(nil, "SUBSCRIBE", "broadcast"))
	want := "*2\r\n$9\r\nSUBSCRIBE\r\n$9\r\nbroadcast\r\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSubscriberReadsWithoutAllocating subscribes to a real redis-server
// (RESP2, then RESP3 after HELLO 3) and reads published messages: once the
// buffer has its size, a message costs no allocation.
func TestSubscriberReadsWithoutAllocating(t *testing.T) {
	rs := testenv.StartRedis(t)
	for _, proto := range []string{"2", "3"} {
		conn, err := net.Dial("tcp", rs.Addr())
		if err != nil {
			t.Fatal(err)
		}
		rd := NewReader(conn, Config{})
		cmds := AppendCommand(nil, "HELLO", proto)
		if _, err := conn.Write(cmds); err != nil {
			t.Fatal(err)
		}
		// HELLO's reply is a map, which a subscriber never reads: skip it raw.
		skipHello(t, conn, rd)
		if _, err := conn.Write(AppendCommand(nil, "SUBSCRIBE", "c")); err != nil {
			t.Fatal(err)
		}
		rep, err := rd.Next()
		if err != nil || !rep.IsPush("subscribe") {
			t.Fatalf("RESP%s: subscribe: got %q %v", proto, rep.Args, err)
		}
		pub := rs.Client()
		payload := bytes.Repeat([]byte("x"), 100)
		const runs = 200
		// Publish first: the publisher's own allocations would count.
		pipe := pub.Pipeline()
		for range runs + 1 {
			pipe.Publish(context.Background(), "c", payload)
		}
		if _, err := pipe.Exec(context.Background()); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		allocs := testing.AllocsPerRun(runs, func() {
			rep, err := rd.Next()
			if err != nil || !rep.IsPush("message") || !bytes.Equal(rep.Args[2], payload) {
				t.Fatalf("RESP%s: got %q %v", proto, rep.Args, err)
			}
		})
		if allocs != 0 {
			t.Errorf("RESP%s: %v allocations per message, want 0", proto, allocs)
		}
		conn.Close()
		pub.Close()
	}
}

// skipHello reads HELLO's map reply off conn before rd sees it: RESP3's
// reply is a map, RESP2's a flat array.
func skipHello(t *testing.T, conn net.Conn, rd *Reader) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [4096]byte
	var got []byte
	for !bytes.Contains(got, []byte("modules")) || !bytes.HasSuffix(got, []byte("\r\n")) {
		n, err := conn.Read(b[:])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b[:n]...)
	}
	if rd.Buffered() != 0 {
		t.Fatal("reader has buffered bytes")
	}
}
