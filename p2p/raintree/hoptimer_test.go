package raintree

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Held hops run out in the order they began, HopHold after each, all on
// one timer; a hop its frames let go first is not let go again, and after
// close none is.
func TestHeldHopsRunOutInOrderOnOneTimer(t *testing.T) {
	const hold = 100 * time.Millisecond
	clock := newFakeClock()
	var mu sync.Mutex
	var due []int
	batches := map[*hopBatch]int{}
	ht := &hopTimer{clock: clock, due: func(b *hopBatch) {
		mu.Lock()
		defer mu.Unlock()
		due = append(due, batches[b])
	}}
	got := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(due)
	}
	hold3 := func(first int) {
		for i := first; i < first+3; i++ {
			b := &hopBatch{}
			batches[b] = i
			ht.hold(b, hold)
			clock.Advance(10 * time.Millisecond)
		}
	}
	hold3(0) // held at 0, 10 and 20 ms
	if n := clock.Pending(); n != 1 {
		t.Fatalf("%d timers for three holds, want 1", n)
	}
	for b, i := range batches {
		if i == 1 {
			b.released.Store(true) // its frames were written first
		}
	}
	clock.Advance(hold - 30*time.Millisecond) // 100 ms: the first runs out
	if g := got(); !slices.Equal(g, []int{0}) {
		t.Fatalf("at 100 ms, let go %v, want [0]", g)
	}
	clock.Advance(20 * time.Millisecond) // 120 ms
	if g := got(); !slices.Equal(g, []int{0, 1, 2}) {
		t.Fatalf("at 120 ms, let go %v, want [0 1 2] (nextHop lets each go once)", g)
	}
	if n := clock.Pending(); n != 0 {
		t.Fatalf("%d timers armed with nothing held", n)
	}
	hold3(3)
	ht.close()
	clock.Advance(time.Second)
	if g := got(); len(g) != 3 {
		t.Fatalf("after close, let go %v", g)
	}
}
