package raintree

import (
	"sync"
	"time"
)

// hopTimer lets held hops go once HopHold has passed (sendHop), with one
// timer for all of them rather than one per receipt, whose calls would be
// a goroutine per receipt when a loaded node's frames are slow to write.
// Every hold is HopHold long, so holds run out in the order they began
// and a queue in that order is all the bookkeeping needed.
type hopTimer struct {
	clock Clock
	due   func(*hopBatch) // called for each hold that ran out, in order

	mu     sync.Mutex
	queue  []timedHop
	timer  Timer // armed for queue[0] while the queue is not empty
	closed bool
}

type timedHop struct {
	at time.Time
	b  *hopBatch
}

// hold starts b's hold of d.
func (t *hopTimer) hold(b *hopBatch, d time.Duration) {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	// Holds already let go by their frames wait for nothing.
	for len(t.queue) > 0 && t.queue[0].b.released.Load() {
		t.queue[0] = timedHop{}
		t.queue = t.queue[1:]
	}
	t.queue = append(t.queue, timedHop{at: now.Add(d), b: b})
	if len(t.queue) == 1 {
		t.armLocked(now)
	}
}

// armLocked sets the timer for the first hold. t.mu is held.
func (t *hopTimer) armLocked(now time.Time) {
	if t.timer != nil {
		t.timer.Stop()
	}
	t.timer = t.clock.AfterFunc(t.queue[0].at.Sub(now), t.fire)
}

// fire lets go every hold that ran out, and sets the timer for the next.
func (t *hopTimer) fire() {
	now := t.clock.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	var out []*hopBatch
	for len(t.queue) > 0 && !t.queue[0].at.After(now) {
		out = append(out, t.queue[0].b)
		t.queue[0] = timedHop{}
		t.queue = t.queue[1:]
	}
	if len(t.queue) > 0 {
		t.armLocked(now)
	}
	t.mu.Unlock()
	for _, b := range out {
		t.due(b)
	}
}

// close stops the timer; holds still queued are never let go by it.
func (t *hopTimer) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.queue = nil
}
