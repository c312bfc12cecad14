// Package lockorder is a mutex that can check the process's lock order
// (docs/LOCKS.md) at run time. A Mutex is a sync.Mutex with a Rank: built
// with the lockorder tag (go test -tags lockorder), taking a Mutex while the
// same goroutine holds one of a higher rank panics with both names, so a
// test that runs the code paths catches an inverted order before it
// deadlocks in production; built without the tag, a Mutex is a sync.Mutex
// and its rank costs nothing. A Mutex whose rank was never set (zero) is
// not checked.
//
// The checker keeps, under its own lock, the ranks each goroutine holds; it
// is meant for tests, not for production builds.
package lockorder

// Rank is a lock's place in docs/LOCKS.md: a goroutine takes locks in
// increasing rank. Only the locks that carry a Mutex have one here.
type Rank int

// The ranks, in the order of docs/LOCKS.md.
const (
	unranked Rank = iota
	// RedisCluster is fanout/redis Cluster.mu: the slot map, the shards,
	// the channels. A shard session is created and called under it.
	RedisCluster Rank = 40
	// RedisSession is fanout/redis session.mu: one pub/sub connection's
	// subscriptions. Nothing else is taken under it.
	RedisSession Rank = 50
)

var names = map[Rank]string{RedisCluster: "redis Cluster.mu", RedisSession: "redis session.mu"}

func (r Rank) String() string {
	if n, ok := names[r]; ok {
		return n
	}
	return "rank " + itoa(int(r))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
