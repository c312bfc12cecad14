package resp

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Errors of Next.
var (
	// ErrProtocol: the bytes read are not RESP. The connection is unusable.
	ErrProtocol = errors.New("resp: protocol error")
	// ErrUnsupported: a nested aggregate, which no subscriber receives.
	ErrUnsupported = errors.New("resp: nested reply not supported")
	// ErrTooLarge: a reply larger than Config.MaxReplyBytes.
	ErrTooLarge = errors.New("resp: reply too large")
)

// Reply kinds: the RESP type byte of a scalar reply, or of an aggregate.
const (
	KindArray  = '*'
	KindPush   = '>'
	KindBulk   = '$'
	KindSimple = '+'
	KindError  = '-'
	KindInt    = ':'
	KindNull   = '_'
)

// Reply is one reply. For an array or push, Args holds its elements; for a
// scalar, Args holds one element, the scalar's text (nil for a null). The
// slices point into the Reader's buffer and are valid until the next call
// to Next.
type Reply struct {
	Kind byte
	Args [][]byte
}

// IsPush reports whether r is an aggregate (a RESP2 array or a RESP3 push)
// whose first element is kind, such as "message" or "subscribe".
func (r *Reply) IsPush(kind string) bool {
	return (r.Kind == KindArray || r.Kind == KindPush) && len(r.Args) > 0 && string(r.Args[0]) == kind
}

// Config sizes a Reader. Zero values mean the defaults in each comment.
type Config struct {
	// BufferBytes is the read buffer's starting size; zero means 64 KiB.
	BufferBytes int
	// MaxReplyBytes bounds one reply; zero means 512 MiB, Redis's own
	// bound on a bulk string.
	MaxReplyBytes int
}

// Reader reads replies from r.
type Reader struct {
	r     io.Reader
	max   int
	buf   []byte   // read buffer; buf[start:end] is unparsed
	start int      // first unparsed byte
	end   int      // end of the bytes read
	args  [][]byte // Reply.Args, reused
}

// NewReader returns a Reader of rd.
func NewReader(rd io.Reader, cfg Config) *Reader {
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = 64 << 10
	}
	if cfg.MaxReplyBytes <= 0 {
		cfg.MaxReplyBytes = 512 << 20
	}
	return &Reader{r: rd, max: cfg.MaxReplyBytes, buf: make([]byte, cfg.BufferBytes), args: make([][]byte, 0, 8)}
}

// Buffered reports how many bytes are read but not yet returned: a caller
// that batches work can tell whether the next Next will read the
// connection.
func (r *Reader) Buffered() int { return r.end - r.start }

// Next returns the next reply, reading the connection as needed. Its
// slices are valid until the next call.
func (r *Reader) Next() (Reply, error) {
	for {
		rep, n, err := r.parse(r.buf[r.start:r.end])
		if err != nil {
			return Reply{}, err
		}
		if n > 0 {
			r.start += n
			if r.start == r.end {
				r.start, r.end = 0, 0
			}
			return rep, nil
		}
		if err := r.fill(); err != nil {
			return Reply{}, err
		}
	}
}

// fill reads more bytes, first moving the unparsed tail to the front, and
// growing the buffer when the tail fills it.
func (r *Reader) fill() error {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	if r.end == len(r.buf) {
		if len(r.buf) >= r.max {
			return ErrTooLarge
		}
		grown := make([]byte, min(2*len(r.buf), r.max))
		copy(grown, r.buf[:r.end])
		r.buf = grown
	}
	n, err := r.r.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// parse reads one reply from b. It returns n == 0 when b does not hold a
// whole reply yet.
func (r *Reader) parse(b []byte) (Reply, int, error) {
	r.args = r.args[:0]
	if len(b) == 0 {
		return Reply{}, 0, nil
	}
	kind := b[0]
	switch kind {
	case KindArray, KindPush:
		count, n, err := header(b)
		if err != nil || n == 0 {
			return Reply{}, 0, err
		}
		if count < 0 { // a null array
			return Reply{Kind: KindNull}, n, nil
		}
		for range count {
			v, m, err := scalar(b[n:])
			if err != nil || m == 0 {
				return Reply{}, 0, err
			}
			r.args = append(r.args, v)
			n += m
		}
		return Reply{Kind: kind, Args: r.args}, n, nil
	default:
		v, n, err := scalar(b)
		if err != nil || n == 0 {
			return Reply{}, 0, err
		}
		r.args = append(r.args, v)
		return Reply{Kind: kind, Args: r.args}, n, nil
	}
}

// scalar reads one scalar from b: its text (nil for a null) and its length
// on the wire, 0 when incomplete.
func scalar(b []byte) ([]byte, int, error) {
	if len(b) == 0 {
		return nil, 0, nil
	}
	switch b[0] {
	case KindBulk, '=', '!': // bulk string, verbatim string, bulk error
		size, n, err := header(b)
		if err != nil || n == 0 {
			return nil, 0, err
		}
		if size < 0 {
			return nil, n, nil // null bulk string
		}
		end := n + size
		if len(b) < end+2 {
			return nil, 0, nil
		}
		if b[end] != '\r' || b[end+1] != '\n' {
			return nil, 0, ErrProtocol
		}
		return b[n:end:end], end + 2, nil
	case KindSimple, KindError, KindInt, ',', '(', '#':
		line, n := lineOf(b)
		if n == 0 {
			return nil, 0, nil
		}
		return line[1:], n, nil
	case KindNull:
		_, n := lineOf(b)
		return nil, n, nil
	case KindArray, KindPush, '%', '~', '|':
		return nil, 0, ErrUnsupported
	}
	return nil, 0, fmt.Errorf("%w: type byte %q", ErrProtocol, b[0])
}

// header reads the length of an aggregate or bulk string from b's first
// line. It returns n == 0 when the line is incomplete.
func header(b []byte) (int, int, error) {
	line, n := lineOf(b)
	if n == 0 {
		return 0, 0, nil
	}
	v, ok := atoi(line[1:])
	if !ok || v < -1 {
		return 0, 0, fmt.Errorf("%w: length %q", ErrProtocol, line[1:])
	}
	return v, n, nil
}

// lineOf returns b's first line without its CRLF and the bytes it spans
// with it, or n == 0 when the line is incomplete.
func lineOf(b []byte) ([]byte, int) {
	for i := 1; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], i + 2
		}
	}
	return nil, 0
}

// atoi parses a decimal integer without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// AppendCommand appends args as one RESP command (an array of bulk
// strings) to dst.
func AppendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}
