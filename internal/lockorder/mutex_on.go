//go:build lockorder

package lockorder

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
)

// Mutex is a sync.Mutex that checks, when locked, that its goroutine holds
// no Mutex of a higher rank.
type Mutex struct {
	mu   sync.Mutex
	rank Rank // set by SetRank before use; read-only after
}

// SetRank records m's rank; call it before m is used.
func (m *Mutex) SetRank(r Rank) { m.rank = r }

// Checking reports whether the lock order is checked (the lockorder tag).
const Checking = true

var (
	heldMu sync.Mutex
	held   = map[uint64][]Rank{} // guarded by heldMu; goroutine id → ranks it holds
)

// Lock panics if the goroutine holds a Mutex of a higher rank, then locks.
func (m *Mutex) Lock() {
	if m.rank != unranked {
		g := goid()
		heldMu.Lock()
		for _, h := range held[g] {
			if h > m.rank {
				heldMu.Unlock()
				panic(fmt.Sprintf("lockorder: %s taken while holding %s (docs/LOCKS.md)", m.rank, h))
			}
		}
		heldMu.Unlock()
		m.mu.Lock()
		heldMu.Lock()
		held[g] = append(held[g], m.rank)
		heldMu.Unlock()
		return
	}
	m.mu.Lock()
}

// Unlock unlocks m and forgets it among its goroutine's locks.
func (m *Mutex) Unlock() {
	if m.rank != unranked {
		g := goid()
		heldMu.Lock()
		hs := held[g]
		for i := len(hs) - 1; i >= 0; i-- {
			if hs[i] == m.rank {
				hs = append(hs[:i], hs[i+1:]...)
				break
			}
		}
		if len(hs) == 0 {
			delete(held, g)
		} else {
			held[g] = hs
		}
		heldMu.Unlock()
	}
	m.mu.Unlock()
}

// goid returns the calling goroutine's id, from its stack header.
func goid() uint64 {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	if i := bytes.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	n, _ := strconv.ParseUint(string(s), 10, 64)
	return n
}
