// Package dedup suppresses repeated envelopes: a bounded set of recently seen
// nonces that answers "first time?" in O(1), safe for concurrent use.
//
// It is not a replay defence over unbounded time: once more than Capacity
// newer nonces have been seen, the oldest are forgotten.
package dedup

import (
	"errors"
	"sync"
	"sync/atomic"
)

// DefaultCapacity is how many recent nonces a Deduper remembers by default:
// several minutes of traffic at thousands of envelopes a second, in ~1.5 MiB.
const DefaultCapacity = 65536

// ErrBadCapacity is returned for a capacity below one.
var ErrBadCapacity = errors.New("dedup capacity must be at least 1")

// Deduper remembers the last Capacity nonces, evicting the oldest first.
type Deduper struct {
	mu   sync.Mutex
	seen map[uint64]struct{}
	ring []uint64 // insertion order, used to evict the oldest
	next int
	full bool

	duplicates atomic.Uint64
	evicted    atomic.Uint64
}

// New returns a Deduper that remembers capacity nonces.
func New(capacity int) (*Deduper, error) {
	if capacity < 1 {
		return nil, ErrBadCapacity
	}
	return &Deduper{seen: make(map[uint64]struct{}, capacity), ring: make([]uint64, capacity)}, nil
}

// FirstTime records nonce and reports whether it was not seen before. A
// repeat is counted as a suppressed duplicate.
func (d *Deduper) FirstTime(nonce uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.seen[nonce]; dup {
		d.duplicates.Add(1)
		return false
	}
	if d.full {
		delete(d.seen, d.ring[d.next])
		d.evicted.Add(1)
	}
	d.ring[d.next] = nonce
	d.seen[nonce] = struct{}{}
	d.next++
	if d.next == len(d.ring) {
		d.next, d.full = 0, true
	}
	return true
}

// Duplicates is the number of repeats suppressed so far.
func (d *Deduper) Duplicates() uint64 { return d.duplicates.Load() }

// Evicted is the number of nonces forgotten to stay within capacity.
func (d *Deduper) Evicted() uint64 { return d.evicted.Load() }

// Len is the number of nonces currently remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}
