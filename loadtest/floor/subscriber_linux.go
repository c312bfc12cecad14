//go:build linux

package floor

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/redis/go-redis/v9"

	"github.com/herald-gw/herald/internal/resp"
	"github.com/herald-gw/herald/internal/wsframe"
)

// subscriber is the floor's one Redis connection in subscribed mode, read
// with package resp: a message costs no allocation from the socket read
// to the client writes.
type subscriber struct {
	conn net.Conn
	rd   *resp.Reader
}

// subscribe dials Redis at url (redis://… or host:port), authenticates
// when the URL carries a password, and subscribes to every user channel
// (one pattern) and the broadcast channel.
func subscribe(url, prefix string) (*subscriber, error) {
	opt := &redis.Options{Addr: url}
	if strings.HasPrefix(url, "redis://") {
		var err error
		if opt, err = redis.ParseURL(url); err != nil {
			return nil, err
		}
	}
	conn, err := net.DialTimeout("tcp", opt.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	var cmds []byte
	if opt.Password != "" {
		if opt.Username != "" {
			cmds = resp.AppendCommand(cmds, "AUTH", opt.Username, opt.Password)
		} else {
			cmds = resp.AppendCommand(cmds, "AUTH", opt.Password)
		}
	}
	cmds = resp.AppendCommand(cmds, "PSUBSCRIBE", prefix+"user:*")
	cmds = resp.AppendCommand(cmds, "SUBSCRIBE", prefix+"broadcast")
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(cmds); err != nil {
		conn.Close()
		return nil, err
	}
	s := &subscriber{conn: conn, rd: resp.NewReader(conn, resp.Config{})}
	for confirmed := 0; confirmed < 2; {
		rep, err := s.rd.Next()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("floor: subscribe: %w", err)
		}
		switch {
		case rep.Kind == resp.KindError:
			conn.Close()
			return nil, fmt.Errorf("floor: subscribe: %s", rep.Args[0])
		case rep.IsPush("psubscribe"), rep.IsPush("subscribe"):
			confirmed++
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return s, nil
}

// next returns the next message's channel and payload, valid until the
// following call.
func (s *subscriber) next() (channel, payload []byte, err error) {
	for {
		rep, err := s.rd.Next()
		if err != nil {
			return nil, nil, err
		}
		switch {
		case rep.IsPush("message") && len(rep.Args) == 3:
			return rep.Args[1], rep.Args[2], nil
		case rep.IsPush("pmessage") && len(rep.Args) == 4:
			return rep.Args[2], rep.Args[3], nil
		}
	}
}

// relay writes every Redis message to its sockets, one write system call
// each. The frame buffer is reused: each write completes, or the message
// is dropped for that socket, before the next message is read.
func (s *Server) relay() {
	userPrefix := []byte(s.cfg.ChannelPrefix + "user:")
	bcast := []byte(s.cfg.ChannelPrefix + "broadcast")
	var f []byte
	for {
		channel, payload, err := s.sub.next()
		if err != nil {
			return // closed by Close, or Redis went away: the floor does not reconnect
		}
		f = wsframe.AppendFrame(f[:0], ws.OpText, payload)
		s.mu.Lock()
		switch {
		case bytes.Equal(channel, bcast):
			for fd := range s.owner {
				s.writeLocked(fd, f)
			}
		case bytes.HasPrefix(channel, userPrefix):
			for _, fd := range s.users[string(channel[len(userPrefix):])] {
				s.writeLocked(fd, f)
			}
		}
		s.mu.Unlock()
	}
}
