//go:build linux

package wscore

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/herald-gw/herald/internal/testenv"
)

// TestCloseEchoAfterHalfClose: a client that sends its close frame and then
// shuts its side of the connection still gets the echo of its close frame
// (RFC 6455 §5.5.1) before the server closes.
func TestCloseEchoAfterHalfClose(t *testing.T) {
	k := newTestCore(t)
	ln := listen(t)
	for i := range 20 {
		client, s := pair(t, ln)
		rec := &recorder{}
		c, err := k.NewConn(s, rec)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.Start(nil); st != Active || err != nil {
			t.Fatalf("Start = %s, %v", st, err)
		}
		closing := ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(4321, "bye")))
		if err := ws.WriteFrame(client, closing); err != nil {
			t.Fatal(err)
		}
		if err := client.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, err := ws.ReadHeader(client)
		if err != nil {
			t.Fatalf("socket %d: no close frame before the end: %v", i, err)
		}
		body := make([]byte, h.Length)
		if _, err := io.ReadFull(client, body); err != nil {
			t.Fatal(err)
		}
		if code, _ := ws.ParseCloseFrameData(body); h.OpCode != ws.OpClose || code != 4321 {
			t.Fatalf("socket %d: got opcode %d with code %d, want the close echo with 4321", i, h.OpCode, code)
		}
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("socket %d: after the echo: %v, want EOF", i, err)
		}
		testenv.Eventually(t, 5*time.Second, func() error {
			if len(rec.ends()) == 0 {
				return fmt.Errorf("socket %d: no OnClose yet", i)
			}
			return nil
		})
		if ends := rec.ends(); len(ends) != 1 || ends[0].Code != 4321 {
			t.Fatalf("socket %d: OnClose calls %v, want one with the client's 4321", i, ends)
		}
	}
}
