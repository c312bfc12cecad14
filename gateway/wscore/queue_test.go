package wscore

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
)

// frameOf is a queue entry holding s, stamped with at when at is not 0, as
// MessageFrame stamps (the queue does not look inside frames).
func frameOf(s string, at int64) Frame {
	if at == 0 {
		return Frame{b: []byte(s)}
	}
	b := make([]byte, len(s), len(s)+stampLen)
	copy(b, s)
	binary.LittleEndian.PutUint64(b[len(s):len(s)+stampLen], uint64(at))
	return Frame{b: b}
}

// queueOp is one step of a queue scenario.
type queueOp struct {
	op   string // push, take, consume, drop, reset
	arg  string // push: the frame's bytes
	at   int64  // push: receipt time
	n    int    // take: max frames; consume: bytes written
	want string // take: the bytes taken; consume: "done,oldest"
}

func TestOutQueue(t *testing.T) {
	tests := []struct {
		name      string
		ops       []queueOp
		wantBytes int
		wantLen   int
		wantLeft  string // the unwritten bytes left, in order
	}{
		{"empty", nil, 0, 0, ""},
		{"push two", []queueOp{{op: "push", arg: "abc"}, {op: "push", arg: "de"}}, 5, 2, "abcde"},
		{"take all, write all", []queueOp{
			{op: "push", arg: "abc", at: 5}, {op: "push", arg: "de", at: 3},
			{op: "take", n: 10, want: "abc|de"}, {op: "consume", n: 5, want: "2,3"},
		}, 0, 0, ""},
		{"take is bounded", []queueOp{
			{op: "push", arg: "a"}, {op: "push", arg: "b"}, {op: "push", arg: "c"},
			{op: "take", n: 2, want: "a|b"},
		}, 3, 3, "abc"},
		{"partial write keeps the rest of the head frame", []queueOp{
			{op: "push", arg: "abcd", at: 1}, {op: "push", arg: "ef", at: 2},
			{op: "take", n: 10, want: "abcd|ef"}, {op: "consume", n: 2, want: "0,0"},
			{op: "take", n: 10, want: "cd|ef"},
		}, 4, 2, "cdef"},
		{"write ending inside the second frame", []queueOp{
			{op: "push", arg: "ab", at: 7}, {op: "push", arg: "cde"},
			{op: "take", n: 10, want: "ab|cde"}, {op: "consume", n: 3, want: "1,7"},
		}, 2, 1, "de"},
		{"control frames carry no receipt time", []queueOp{
			{op: "push", arg: "p"}, {op: "push", arg: "m", at: 9},
			{op: "take", n: 10, want: "p|m"}, {op: "consume", n: 2, want: "1,9"},
		}, 0, 0, ""},
		{"nothing written", []queueOp{
			{op: "push", arg: "ab"}, {op: "take", n: 10, want: "ab"}, {op: "consume", n: 0, want: "0,0"},
		}, 2, 1, "ab"},
		{"drop with nothing started drops all", []queueOp{
			{op: "push", arg: "ab"}, {op: "push", arg: "cd"}, {op: "drop"},
		}, 0, 0, ""},
		{"drop keeps the frames in flight", []queueOp{
			{op: "push", arg: "ab"}, {op: "push", arg: "cd"}, {op: "take", n: 1, want: "ab"},
			{op: "push", arg: "ef"}, {op: "drop"},
		}, 2, 1, "ab"},
		{"drop keeps a partly written frame", []queueOp{
			{op: "push", arg: "abc"}, {op: "push", arg: "de"}, {op: "take", n: 10, want: "abc|de"},
			{op: "consume", n: 1, want: "0,0"}, {op: "drop"},
		}, 2, 1, "bc"},
		{"push after drop", []queueOp{
			{op: "push", arg: "abc"}, {op: "take", n: 10, want: "abc"}, {op: "consume", n: 1, want: "0,0"},
			{op: "push", arg: "x"}, {op: "drop"}, {op: "push", arg: "close"},
		}, 7, 2, "bcclose"},
		{"reset", []queueOp{{op: "push", arg: "abc"}, {op: "reset"}}, 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q outQueue
			for i, op := range tt.ops {
				switch op.op {
				case "push":
					q.push(frameOf(op.arg, op.at))
				case "take":
					iov, total := q.take(nil, op.n)
					var parts []string
					sum := 0
					for _, b := range iov {
						parts = append(parts, string(b))
						sum += len(b)
					}
					if got := strings.Join(parts, "|"); got != op.want || sum != total {
						t.Fatalf("op %d: take = %q (%d bytes), want %q (%d bytes)", i, got, total, op.want, sum)
					}
				case "consume":
					done, oldest := q.consume(op.n)
					if got := strconv.Itoa(done) + "," + strconv.FormatInt(oldest, 10); got != op.want {
						t.Fatalf("op %d: consume = %s, want %s", i, got, op.want)
					}
				case "drop":
					q.dropUnstarted()
				case "reset":
					q.reset()
				}
			}
			if q.bytes != tt.wantBytes || q.len() != tt.wantLen {
				t.Errorf("bytes %d, frames %d; want %d, %d", q.bytes, q.len(), tt.wantBytes, tt.wantLen)
			}
			iov, total := q.take(nil, 1000)
			var left []byte
			for _, b := range iov {
				left = append(left, b...)
			}
			if string(left) != tt.wantLeft || total != q.bytes {
				t.Errorf("left %q (%d bytes), want %q (%d counted)", left, total, tt.wantLeft, q.bytes)
			}
			if q.len() == 0 && q.frames != nil {
				t.Error("an empty queue keeps its buffer")
			}
		})
	}
}
