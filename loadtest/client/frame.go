package client

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/wsframe"
)

var errProtocol = errors.New("server broke RFC 6455")

// maxServerFrame is the largest server frame the client accepts.
const maxServerFrame = 1 << 30

// nextFrame parses one server frame at the start of b. It returns the
// frame's header, its payload (aliasing b) and its total length, or n = 0
// when b does not hold a whole frame yet.
func nextFrame(b []byte) (h ws.Header, payload []byte, n int, err error) {
	h, hn, err := wsframe.ParseHeader(b)
	switch {
	case h.Masked:
		return h, nil, 0, errProtocol // servers never mask
	case err != nil, h.Length > maxServerFrame:
		return h, nil, 0, errProtocol
	case hn == 0 || int64(len(b)-hn) < h.Length:
		return h, nil, 0, nil
	}
	end := hn + int(h.Length)
	return h, b[hn:end], end, nil
}

// appendClientFrame appends one masked frame with a fresh mask to dst.
func appendClientFrame(dst []byte, op ws.OpCode, payload []byte, rng *rand.Rand) []byte {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rng.Uint32())
	return wsframe.AppendMasked(dst, op, payload, key)
}

// parseClose returns a close frame's code (1005 when it carries none).
func parseClose(p []byte) (int, string) {
	if len(p) < 2 {
		return 1005, ""
	}
	return int(binary.BigEndian.Uint16(p)), string(p[2:])
}
