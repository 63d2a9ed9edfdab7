package raintree

import (
	"container/heap"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// ackKey identifies what an ACK acknowledges: the receiver echoes the
// frame's message ID, level and span, and the sender knows who it sent to.
type ackKey struct {
	peer  peer.ID
	msgID wire.MessageID
	level int
	span  Span
	// proof marks a wait for the proof that the head forwarded the
	// frame (forwarded.go) rather than for its ACK.
	proof bool
}

// ackTracker holds the frames waiting for an ACK, each with a deadline. It
// is pure bookkeeping: no clock, no timers, no locks. The caller passes the
// time in and acts on what Expire returns. Several frames may wait under
// the same key (reference mode forwards every copy it receives); an ACK
// settles the oldest.
type ackTracker[T any] struct {
	nextID  uint64
	entries map[uint64]*ackEntry[T]
	byKey   map[ackKey][]uint64 // ids in the order they were added
	due     deadlines
}

type ackEntry[T any] struct {
	key      ackKey
	deadline time.Time
	value    T
}

func newAckTracker[T any]() *ackTracker[T] {
	return &ackTracker[T]{
		entries: make(map[uint64]*ackEntry[T]),
		byKey:   make(map[ackKey][]uint64),
	}
}

// Add records a frame waiting for an ACK until deadline and returns its id.
func (t *ackTracker[T]) Add(key ackKey, deadline time.Time, v T) uint64 {
	t.nextID++
	id := t.nextID
	t.entries[id] = &ackEntry[T]{key: key, deadline: deadline, value: v}
	t.byKey[key] = append(t.byKey[key], id)
	heap.Push(&t.due, due{at: deadline, id: id})
	return id
}

// Ack settles the oldest frame waiting under key. It reports false for an
// ACK nobody waits for: late, duplicated or forged.
func (t *ackTracker[T]) Ack(key ackKey) (T, bool) {
	ids := t.byKey[key]
	if len(ids) == 0 {
		var zero T
		return zero, false
	}
	return t.Remove(ids[0])
}

// Peek returns the oldest frame waiting under key, leaving it waiting.
func (t *ackTracker[T]) Peek(key ackKey) (T, bool) {
	ids := t.byKey[key]
	if len(ids) == 0 {
		var zero T
		return zero, false
	}
	return t.entries[ids[0]].value, true
}

// Remove forgets the frame with the given id, e.g. because sending it
// failed, and reports whether it was still waiting.
func (t *ackTracker[T]) Remove(id uint64) (T, bool) {
	e, ok := t.entries[id]
	if !ok {
		var zero T
		return zero, false
	}
	delete(t.entries, id)
	t.unindex(e.key, id)
	// Heap entries stay until they surface; Next and Expire skip entries
	// that are gone or whose deadline moved.
	return e.value, true
}

// Extend moves the deadline of a waiting frame, e.g. from "sent by then"
// to "acknowledged by then" once the transport took it. It reports whether
// the frame was still waiting.
func (t *ackTracker[T]) Extend(id uint64, deadline time.Time) bool {
	e, ok := t.entries[id]
	if !ok {
		return false
	}
	e.deadline = deadline
	heap.Push(&t.due, due{at: deadline, id: id})
	return true
}

// Expire removes and returns, earliest deadline first, every frame whose
// deadline is not after now.
func (t *ackTracker[T]) Expire(now time.Time) []T {
	var out []T
	for t.due.Len() > 0 && !t.due[0].at.After(now) {
		d := heap.Pop(&t.due).(due)
		if e, ok := t.entries[d.id]; ok && e.deadline.Equal(d.at) {
			delete(t.entries, d.id)
			t.unindex(e.key, d.id)
			out = append(out, e.value)
		}
	}
	return out
}

// Next returns the earliest deadline still waiting.
func (t *ackTracker[T]) Next() (time.Time, bool) {
	for t.due.Len() > 0 {
		if e, ok := t.entries[t.due[0].id]; ok && e.deadline.Equal(t.due[0].at) {
			return t.due[0].at, true
		}
		heap.Pop(&t.due)
	}
	return time.Time{}, false
}

// Len is the number of frames waiting.
func (t *ackTracker[T]) Len() int { return len(t.entries) }

func (t *ackTracker[T]) unindex(key ackKey, id uint64) {
	ids := t.byKey[key]
	if i := slices.Index(ids, id); i >= 0 {
		ids = slices.Delete(ids, i, i+1)
	}
	if len(ids) == 0 {
		delete(t.byKey, key)
	} else {
		t.byKey[key] = ids
	}
}

type due struct {
	at time.Time
	id uint64
}

// deadlines is a min-heap by time, then by id so equal deadlines expire in
// the order they were added.
type deadlines []due

func (d deadlines) Len() int { return len(d) }
func (d deadlines) Less(i, j int) bool {
	if c := d[i].at.Compare(d[j].at); c != 0 {
		return c < 0
	}
	return d[i].id < d[j].id
}
func (d deadlines) Swap(i, j int) { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)   { *d = append(*d, x.(due)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
