package gateway

import (
	"errors"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/herald-gw/herald/fanout"
)

// errTooMany refuses a socket over the per-user cap.
var errTooMany = errors.New("gateway: too many sockets for this user")

const registryShards = 64

// registry maps user id → socket id → socket, and socket id → socket, in
// shards keyed by a hash of the id. Readers copy the sockets they need under
// a shard's read lock and write to them after releasing it.
//
// The registry drives the broker: it subscribes to a user when the replica
// gains the user's first socket and unsubscribes when it loses the last, under
// the user's shard lock, so the broker sees the calls for one user in order.
// With a broker that subscribes sockets one by one (fanout.SocketSubscriber:
// Redis Cluster), it also subscribes each socket's channel on add and
// unsubscribes it on remove.
type registry struct {
	seed    maphash.Seed
	broker  fanout.Broker
	sockSub fanout.SocketSubscriber // nil unless broker is one
	maxUser int                     // sockets per user

	users   [registryShards]userShard
	sockets [registryShards]socketShard

	total  atomic.Int64 // sockets
	nusers atomic.Int64 // users with at least one socket
}

type userShard struct {
	mu sync.RWMutex
	m  map[string]*userSockets // guarded by mu
}

// userSockets are one user's sockets on this replica. A user has a handful
// of sockets at most (MaxSocketsPerUser), most often one: a slice costs a
// socket 8 bytes where a map per user cost about 250.
type userSockets struct {
	conns []*Conn // guarded by the shard's mu
	// ready is the channel the broker closes once the user's subscription
	// is active, guarded by the shard's mu; nil once a handshake saw it
	// closed (settled), so that a user whose subscription is active keeps
	// no channel (96 bytes).
	ready <-chan struct{}
}

type socketShard struct {
	mu sync.RWMutex
	m  map[string]*Conn // guarded by mu
}

func newRegistry(b fanout.Broker, maxPerUser int) *registry {
	r := &registry{seed: maphash.MakeSeed(), broker: b, maxUser: maxPerUser}
	r.sockSub, _ = b.(fanout.SocketSubscriber)
	for i := range r.users {
		r.users[i].m = make(map[string]*userSockets)
		r.sockets[i].m = make(map[string]*Conn)
	}
	return r
}

func (r *registry) shard(id string) int {
	return int(maphash.String(r.seed, id) % registryShards)
}

// add registers c. It returns the channel that is closed once messages for
// c's user reach this replica, and the one closed once messages for c
// itself do (nil when the broker needs no per-socket subscription), or
// errTooMany.
func (r *registry) add(c *Conn) (user, socket <-chan struct{}, err error) {
	us := &r.users[r.shard(c.user)]
	us.mu.Lock()
	u := us.m[c.user]
	if u != nil && len(u.conns) >= r.maxUser {
		us.mu.Unlock()
		return nil, nil, errTooMany
	}
	if u == nil {
		u = &userSockets{conns: make([]*Conn, 0, 1), ready: r.broker.Subscribe(c.user)}
		us.m[c.user] = u
		r.nusers.Add(1)
	}
	u.conns = append(u.conns, c)
	ready := u.ready
	if ready == nil {
		ready = fanout.Confirmed()
	}
	us.mu.Unlock()

	if r.sockSub != nil {
		socket = r.sockSub.SubscribeSocket(c.id)
	}
	ss := &r.sockets[r.shard(c.id)]
	ss.mu.Lock()
	ss.m[c.id] = c
	ss.mu.Unlock()
	r.total.Add(1)
	return ready, socket, nil
}

// settled forgets user's ready channel once it is closed: the user's
// subscription is active, and stays so while the user has a socket here.
func (r *registry) settled(user string) {
	us := &r.users[r.shard(user)]
	us.mu.Lock()
	if u := us.m[user]; u != nil && u.ready != nil {
		select {
		case <-u.ready:
			u.ready = nil
		default:
		}
	}
	us.mu.Unlock()
}

// remove unregisters c; it is a no-op for a socket that is not registered.
func (r *registry) remove(c *Conn) {
	ss := &r.sockets[r.shard(c.id)]
	ss.mu.Lock()
	if ss.m[c.id] != c {
		ss.mu.Unlock()
		return
	}
	delete(ss.m, c.id)
	ss.mu.Unlock()
	r.total.Add(-1)
	if r.sockSub != nil {
		r.sockSub.UnsubscribeSocket(c.id)
	}

	us := &r.users[r.shard(c.user)]
	us.mu.Lock()
	if u := us.m[c.user]; u != nil {
		if i := slices.Index(u.conns, c); i >= 0 {
			last := len(u.conns) - 1
			u.conns[i] = u.conns[last]
			u.conns[last] = nil
			u.conns = u.conns[:last]
		}
		if len(u.conns) == 0 {
			delete(us.m, c.user)
			r.broker.Unsubscribe(c.user)
			r.nusers.Add(-1)
		}
	}
	us.mu.Unlock()
}

// appendUser appends the sockets of user to dst.
func (r *registry) appendUser(dst []*Conn, user string) []*Conn {
	us := &r.users[r.shard(user)]
	us.mu.RLock()
	if u := us.m[user]; u != nil {
		dst = append(dst, u.conns...)
	}
	us.mu.RUnlock()
	return dst
}

// socket returns the socket with this id, or nil.
func (r *registry) socket(id string) *Conn {
	ss := &r.sockets[r.shard(id)]
	ss.mu.RLock()
	c := ss.m[id]
	ss.mu.RUnlock()
	return c
}

// each calls fn for every socket, one shard at a time, outside the shard's
// lock. buf is scratch space that each returns for reuse.
func (r *registry) each(buf []*Conn, fn func(*Conn)) []*Conn {
	for i := range r.sockets {
		ss := &r.sockets[i]
		ss.mu.RLock()
		for _, c := range ss.m {
			buf = append(buf, c)
		}
		ss.mu.RUnlock()
		for _, c := range buf {
			fn(c)
		}
		clear(buf)
		buf = buf[:0]
	}
	return buf
}

// appendWelcomed appends to dst up to n welcomed sockets, walking the
// socket shards from shard from.
func (r *registry) appendWelcomed(dst []*Conn, from, n int) []*Conn {
	for i := 0; i < registryShards && len(dst) < n; i++ {
		ss := &r.sockets[(from+i)%registryShards]
		ss.mu.RLock()
		for _, c := range ss.m {
			if len(dst) == n {
				break
			}
			if c.now().phase() == connWelcomed {
				dst = append(dst, c)
			}
		}
		ss.mu.RUnlock()
	}
	return dst
}

// appendUserIDs appends, shard by shard, the ids of the users that hold at
// least one socket, stopping once dst holds max ids (max <= 0: no limit).
func (r *registry) appendUserIDs(dst []string, max int) []string {
	for i := range r.users {
		us := &r.users[i]
		us.mu.RLock()
		for user := range us.m {
			if max > 0 && len(dst) >= max {
				us.mu.RUnlock()
				return dst
			}
			dst = append(dst, user)
		}
		us.mu.RUnlock()
	}
	return dst
}

// LocalUsers returns the ids of the users holding at least one socket on
// this replica, sorted; at most max of them when max > 0 (which ones is then
// unspecified). It visits every registry shard, so it suits development
// tools and small deployments, not a per-message path. Counts across
// replicas need the broker: see the README on presence.
func (s *Server) LocalUsers(max int) []string {
	ids := s.reg.appendUserIDs(nil, max)
	slices.Sort(ids)
	return ids
}
