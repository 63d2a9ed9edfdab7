package peerqueue

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestQueues(t *testing.T) {
	const a, b = peer.ID("a"), peer.ID("b")
	type push struct {
		to     peer.ID
		v      int
		fits   bool
		starts bool
	}
	for _, tt := range []struct {
		name           string
		perPeer, total int
		pushes         []push
		pops           peer.ID
		want           []int
	}{
		{"a peer's first item starts its drainer, and the rest wait in order", 3, 10,
			[]push{{a, 1, true, true}, {a, 2, true, false}, {a, 3, true, false}}, a, []int{1, 2, 3}},
		{"a peer is bounded on its own", 2, 10,
			[]push{{a, 1, true, true}, {a, 2, true, false}, {a, 3, false, false}, {b, 4, true, true}}, a, []int{1, 2}},
		{"with the total reached, a peer's item cannot push out one of a FIFO no longer than its own", 5, 2,
			[]push{{a, 1, true, true}, {b, 2, true, true}, {b, 3, false, false}}, b, []int{2}},
		{"with the total reached, a newcomer takes the place of the oldest item of the longest FIFO", 5, 3,
			[]push{{a, 1, true, true}, {a, 2, true, false}, {a, 3, true, false}, {b, 4, true, true}}, a, []int{2, 3}},
		{"another peer's items are not this one's", 3, 10,
			[]push{{a, 1, true, true}, {b, 2, true, true}, {a, 3, true, false}}, a, []int{1, 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := New[int](tt.perPeer, tt.total)
			for _, p := range tt.pushes {
				started := false
				if fit, _ := q.Push(p.to, p.v, func() { started = true }); fit != p.fits || started != p.starts {
					t.Fatalf("push %v: fit %v, started %v", p, fit, started)
				}
			}
			var got []int
			q.Drain(tt.pops, func(v int) { got = append(got, v) })
			if len(got) != len(tt.want) {
				t.Fatalf("popped %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("popped %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// A peer whose drainer found its FIFO empty (and ended) gets a new one
// with its next item; one still draining does not.
func TestADrainerIsStartedOncePerRun(t *testing.T) {
	q := New[int](4, 4)
	starts := 0
	start := func() { starts++ }
	q.Push("a", 1, start)
	q.Pop("a")            // the drainer takes 1 and is still at work
	q.Push("a", 2, start) // so 2 needs no new one
	if starts != 1 {
		t.Fatalf("%d drainers started for one run", starts)
	}
	q.Pop("a")
	if _, ok := q.Pop("a"); ok {
		t.Fatal("an empty FIFO gave an item")
	}
	q.Push("a", 3, start)
	if starts != 2 {
		t.Fatalf("%d drainers started, want a second once the first ended", starts)
	}
}

// After Close nothing is queued and every drainer ends, and the total
// counts only what waits.
func TestClosedQueuesTakeNothingAndEndTheirDrainers(t *testing.T) {
	q := New[int](4, 4)
	q.Push("a", 1, func() {})
	q.Push("a", 2, func() {})
	if q.Len() != 2 {
		t.Fatalf("Len %d, want 2", q.Len())
	}
	q.Close()
	if _, ok := q.Pop("a"); ok {
		t.Fatal("a closed queue gave an item")
	}
	if ok, _ := q.Push("a", 3, func() { t.Fatal("a drainer started after Close") }); ok {
		t.Fatal("a closed queue took an item")
	}
	if q.Len() != 0 {
		t.Fatalf("Len %d after Close and the drainer's end, want 0", q.Len())
	}
}

// Peers that take nothing fill their FIFOs to the bound each; together
// they reach the total, and an honest peer's item still gets in, in the
// place of the oldest of the longest, counted.
func TestPeersThatTakeNothingCannotStarveAnother(t *testing.T) {
	q := New[int](4, 8)
	for _, p := range []peer.ID{"x", "y"} {
		for i := range 4 {
			if ok, _ := q.Push(p, i, func() {}); !ok {
				t.Fatalf("%s's item %d refused", p, i)
			}
		}
	}
	ok, evicted := q.Push("honest", 9, func() {})
	if !ok || evicted != 1 || q.Len() != 8 {
		t.Fatalf("honest push: fit %v, evicted %d, %d waiting; want true, 1, 8", ok, evicted, q.Len())
	}
	if v, ok := q.Pop("honest"); !ok || v != 9 {
		t.Fatalf("the honest peer's item: %v %v", v, ok)
	}
}
