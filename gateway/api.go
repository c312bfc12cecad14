package gateway

import (
	"context"

	"github.com/herald-gw/herald/fanout/publish"
)

// The in-process API. Every send goes through the broker, the same path a
// backend service's PUBLISH takes, so that it reaches the target's sockets
// on every replica. Counts are this replica's.

// SendToUser writes payload as one text frame to every socket of userID.
// With an inbox (Config.Inbox) payload must be a JSON object: it is
// appended to the user's inbox and sent with its "inbox_id".
func (s *Server) SendToUser(ctx context.Context, userID string, payload []byte) error {
	if s.cfg.Inbox != nil {
		_, err := s.cfg.Inbox.Append(ctx, userID, payload)
		return err
	}
	return s.broker.Publish(ctx, publish.User(userID), payload)
}

// SendToSocket writes payload to the socket with this id.
func (s *Server) SendToSocket(ctx context.Context, socketID string, payload []byte) error {
	return s.broker.Publish(ctx, publish.Socket(socketID), payload)
}

// Broadcast writes payload to every socket.
func (s *Server) Broadcast(ctx context.Context, payload []byte) error {
	return s.broker.Publish(ctx, publish.All(), payload)
}

// BroadcastExcept writes payload to every socket except userID's.
func (s *Server) BroadcastExcept(ctx context.Context, userID string, payload []byte) error {
	return s.broker.Publish(ctx, publish.AllExcept(userID), payload)
}

// DisconnectUser closes every socket of userID with 4000 on every replica.
func (s *Server) DisconnectUser(ctx context.Context, userID, reason string) error {
	return s.broker.PublishControl(ctx, publish.Control{Op: publish.OpDisconnect, UserID: userID, Reason: reason})
}

// Sockets returns how many sockets this replica holds.
func (s *Server) Sockets() int { return int(s.reg.total.Load()) }

// Users returns how many users have at least one socket on this replica.
func (s *Server) Users() int { return int(s.reg.nusers.Load()) }

// UserSockets describes userID's sockets on this replica.
func (s *Server) UserSockets(userID string) []SocketInfo {
	conns := s.reg.appendUser(nil, userID)
	infos := make([]SocketInfo, len(conns))
	for i, c := range conns {
		infos[i] = c.info()
	}
	return infos
}
