//go:build !lockorder

package lockorder

import "sync"

// Mutex is a sync.Mutex; SetRank does nothing without the lockorder tag.
type Mutex struct {
	sync.Mutex
}

// SetRank records m's rank; call it before m is used.
func (m *Mutex) SetRank(Rank) {}

// Checking reports whether the lock order is checked (the lockorder tag).
const Checking = false
