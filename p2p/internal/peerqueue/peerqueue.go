// Package peerqueue holds work bound for peers, each peer's in a FIFO of
// its own, within a bound per peer and one in total, so that a peer that
// is slow to take its work holds up only its own. When the total is
// reached, a newcomer takes the place of the oldest item of the longest
// FIFO, so that peers that take nothing cannot fill the total between
// them and starve the others. The caller drains a peer's FIFO (Drain) with one
// goroutine of its own, started when the FIFO gets its first item and
// ended when Pop finds it empty: one goroutine per peer with work queued
// or an item in hand.
package peerqueue

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Queues are the FIFOs of items of type T, by peer.
type Queues[T any] struct {
	perPeer, total int

	mu     sync.Mutex
	queues map[peer.ID][]T // a peer is here while its drainer runs
	n      int
	closed bool
}

// New returns empty queues of at most perPeer items per peer and total in
// all (both at least 1).
func New[T any](perPeer, total int) *Queues[T] {
	return &Queues[T]{perPeer: max(perPeer, 1), total: max(total, 1), queues: map[peer.ID][]T{}}
}

// Push queues v for p and reports whether it fit, and how many items of
// other peers it pushed out (0 or 1): with the total reached, v takes the
// place of the oldest item of the longest FIFO, if that one is longer than
// p's would be. When p had no drainer, start is called (under the queues'
// lock, so never after Close) to start one, which then Pops p's items
// until there are none.
func (q *Queues[T]) Push(p peer.ID, v T, start func()) (ok bool, evicted int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending, draining := q.queues[p]
	if q.closed || len(pending) >= q.perPeer {
		return false, 0
	}
	if q.n >= q.total {
		if !q.evictLocked(len(pending) + 1) {
			return false, 0
		}
		evicted = 1
	}
	q.queues[p] = append(pending, v)
	q.n++
	if !draining {
		start()
	}
	return true, evicted
}

// evictLocked drops the oldest item of the longest FIFO if that holds
// more than than items, and reports whether it did.
func (q *Queues[T]) evictLocked(than int) bool {
	var longest peer.ID
	most := 0
	for p, pending := range q.queues {
		if len(pending) > most {
			longest, most = p, len(pending)
		}
	}
	if most <= than {
		return false
	}
	var zero T
	pending := q.queues[longest]
	pending[0] = zero
	q.queues[longest] = pending[1:]
	q.n--
	return true
}

// Pop takes p's next item. It reports false when p has none left, or the
// queues are closed (what p had is then forgotten): p's drainer ends.
func (q *Queues[T]) Pop(p peer.ID) (T, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var zero T
	pending := q.queues[p]
	if q.closed || len(pending) == 0 {
		q.n -= len(pending)
		delete(q.queues, p)
		return zero, false
	}
	v := pending[0]
	pending[0] = zero
	q.queues[p] = pending[1:]
	q.n--
	return v, true
}

// Drain hands p's items to send, in order, until Pop finds none: the body
// of p's drainer.
func (q *Queues[T]) Drain(p peer.ID, send func(T)) {
	for v, ok := q.Pop(p); ok; v, ok = q.Pop(p) {
		send(v)
	}
}

// Len is how many items wait, in all.
func (q *Queues[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Close refuses every later Push, and makes every drainer end at its next
// Pop.
func (q *Queues[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
