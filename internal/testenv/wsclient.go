package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// WSClient is a minimal WebSocket client for tests. It reads frames one at a
// time, answers the server's pings unless told not to, and reports close
// frames as *CloseFrame errors.
type WSClient struct {
	Conn   net.Conn
	r      io.Reader
	NoPong bool // leave server pings unanswered (a dead client)
}

// CloseFrame is the close frame a server sent.
type CloseFrame struct {
	Code   int
	Reason string
}

func (c *CloseFrame) Error() string { return fmt.Sprintf("closed by server: %d %s", c.Code, c.Reason) }

// DialWS opens a WebSocket to url ("ws://host/ws?token=…") with extra request
// headers. A refused handshake returns ws.StatusError with the HTTP status.
func DialWS(ctx context.Context, url string, header http.Header) (*WSClient, error) {
	return WSDialer{Header: header}.Dial(ctx, url)
}

// WSDialer dials test sockets with more control than DialWS.
type WSDialer struct {
	Header http.Header
	// RecvBuffer, when set, fixes the socket's kernel receive buffer
	// (SO_RCVBUF) before it connects, which turns off autotuning: a client
	// that stops reading then backs up the server quickly.
	RecvBuffer int
	// LocalIP, when set, is the source address (e.g. 127.0.0.2).
	LocalIP string
	// Timeout bounds the TCP connect and, again, the upgrade. Zero means 5s.
	Timeout time.Duration
}

// Dial opens a socket to url.
func (wd WSDialer) Dial(ctx context.Context, url string) (*WSClient, error) {
	timeout := wd.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	nd := &net.Dialer{Timeout: timeout}
	if wd.LocalIP != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(wd.LocalIP)}
	}
	if wd.RecvBuffer > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, wd.RecvBuffer)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	d := ws.Dialer{Timeout: timeout, NetDial: nd.DialContext}
	if wd.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(wd.Header)
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	c := &WSClient{Conn: conn, r: conn}
	if br != nil {
		c.r = io.MultiReader(br, conn)
	}
	return c, nil
}

// Frame is one frame the server sent.
type Frame struct {
	Op      ws.OpCode
	Payload []byte
}

// ReadFrame reads the next frame, whatever it is.
func (c *WSClient) ReadFrame(timeout time.Duration) (Frame, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return Frame{}, err
	}
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return Frame{}, err
	}
	if h.Masked {
		return Frame{}, errors.New("server sent a masked frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.r, p); err != nil {
		return Frame{}, err
	}
	return Frame{Op: h.OpCode, Payload: p}, nil
}

// ReadText returns the next text message, answering pings on the way. A
// close frame is returned as a *CloseFrame error.
func (c *WSClient) ReadText(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.ReadFrame(time.Until(deadline))
		if err != nil {
			return "", err
		}
		switch f.Op {
		case ws.OpText:
			return string(f.Payload), nil
		case ws.OpPing:
			if !c.NoPong {
				if err := c.WriteFrame(ws.OpPong, f.Payload); err != nil {
					return "", err
				}
			}
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(f.Payload)
			_ = c.WriteFrame(ws.OpClose, f.Payload) // complete the close handshake
			return "", &CloseFrame{Code: int(code), Reason: reason}
		}
	}
}

// ExpectClose reads, skipping messages, until the server's close frame and
// returns it. It fails if the connection ends without one.
func (c *WSClient) ExpectClose(timeout time.Duration) (*CloseFrame, error) {
	deadline := time.Now().Add(timeout)
	for {
		_, err := c.ReadText(time.Until(deadline))
		var cf *CloseFrame
		if errors.As(err, &cf) {
			return cf, nil
		}
		if err != nil {
			return nil, fmt.Errorf("no close frame: %w", err)
		}
	}
}

// WriteFrame sends one masked frame.
func (c *WSClient) WriteFrame(op ws.OpCode, payload []byte) error {
	f := ws.MaskFrameInPlace(ws.NewFrame(op, true, append([]byte(nil), payload...)))
	if err := c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	return ws.WriteFrame(c.Conn, f)
}

// WriteText sends a text message.
func (c *WSClient) WriteText(s string) error { return c.WriteFrame(ws.OpText, []byte(s)) }

// Close drops the connection without a close handshake.
func (c *WSClient) Close() error { return c.Conn.Close() }
