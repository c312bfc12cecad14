package lockorder

import (
	"strings"
	"testing"
)

// TestInvertedOrderFails takes two ranked locks in the order of
// docs/LOCKS.md, then inverted: with the lockorder tag the inversion
// panics, naming both locks; without it, nothing is checked.
func TestInvertedOrderFails(t *testing.T) {
	var cluster, session Mutex
	cluster.SetRank(RedisCluster)
	session.SetRank(RedisSession)

	cluster.Lock()
	session.Lock() // the written order: fine
	session.Unlock()
	cluster.Unlock()

	got := func() (msg string) {
		defer func() {
			if r := recover(); r != nil {
				msg = r.(string)
				session.Unlock()
			}
		}()
		session.Lock()
		cluster.Lock() // inverted
		cluster.Unlock()
		session.Unlock()
		return ""
	}()
	switch {
	case !Checking && got != "":
		t.Fatalf("without the lockorder tag the inversion panicked: %s", got)
	case Checking && !strings.Contains(got, "redis Cluster.mu taken while holding redis session.mu"):
		t.Fatalf("inverted order: got %q, want a panic naming both locks", got)
	}
	// The checker forgot the locks: the written order still passes.
	cluster.Lock()
	session.Lock()
	session.Unlock()
	cluster.Unlock()
}
