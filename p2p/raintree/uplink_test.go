package raintree

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestUplinkSendsHigherLevelsFirstAndKeepsArrivalOrderWithinALevel(t *testing.T) {
	var q uplinkQueue
	arrivals := []struct{ level, index int }{{1, 10}, {3, 11}, {2, 12}, {3, 13}, {1, 14}, {2, 15}}
	for _, a := range arrivals {
		if !q.pushLocked(delegation{target: Target{Level: a.level, Index: a.index}}, 10) {
			t.Fatalf("push of %v refused", a)
		}
	}
	var got []int
	for d, ok := q.popLocked(); ok; d, ok = q.popLocked() {
		got = append(got, d.target.Index)
	}
	if want := []int{11, 13, 12, 15, 10, 14}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
}

func TestUplinkQueueIsBounded(t *testing.T) {
	var q uplinkQueue
	for i := range 3 {
		if !q.pushLocked(delegation{target: Target{Level: 1, Index: i}}, 3) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.pushLocked(delegation{target: Target{Level: 5}}, 3) {
		t.Fatal("a fourth frame fit in a queue of three")
	}
}

// With every tree frame paced, a broadcast still reaches everyone with
// N-1 tree frames.
func TestPacedBroadcastReachesEveryValidator(t *testing.T) {
	// A proof of forwarding that is late on a loaded machine would add a
	// re-delegation; forwarded_test.go covers the checks.
	c := newMockCluster(t, 13, func(cfg *Config) { cfg.PaceBytes, cfg.CheckForwarding = 1, false })
	origin := 4
	nonce := c.broadcast(origin)
	eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, others(13, origin))) == 0 },
		"validators %v never delivered", c.missing(nonce, others(13, origin)))
	var paced uint64
	for _, nd := range c.nodes {
		paced += nd.router.Stats().TreeSent
	}
	if paced != 12 {
		t.Errorf("%d tree frames sent, want 12 (N-1)", paced)
	}
}

func TestSmallMessagesInSmallSetsGoTwoLevelsPerHop(t *testing.T) {
	cfg := DefaultConfig("net")
	tests := []struct {
		name       string
		n, size    int
		perHop     int
		neighbours []int
	}{
		{"a small message in a small set", 100, 1024, 2, []int{1, 2}},
		{"a paced message", 100, cfg.PaceBytes, 1, []int{1, 2}},
		{"a set of 3^6 is still small", DefaultWideMaxValidators, 1024, 2, []int{1, 2}},
		{"a set above WideMaxValidators", DefaultWideMaxValidators + 1, 1024, 1, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cfg.LevelsPerHopFor(tt.n, tt.size); got != tt.perHop {
				t.Errorf("LevelsPerHopFor(%d, %d) = %d, want %d", tt.n, tt.size, got, tt.perHop)
			}
			if got := cfg.PerHops(tt.n); !slices.Equal(got, tt.neighbours) {
				t.Errorf("PerHops(%d) = %v, want %v", tt.n, got, tt.neighbours)
			}
		})
	}
}

// Every node that forwards a paced message hears once that its uplink is
// done with it: the origin and the interior nodes of the plan, no leaf.
func TestOnPacedSentFiresOnceEachForwardingNodeIsDone(t *testing.T) {
	const n, origin = 13, 4
	var mu sync.Mutex
	calls := map[wire.MessageID]int{}
	c := newMockCluster(t, n, func(cfg *Config) {
		cfg.PaceBytes = 1
		// A proof of forwarding that is late on a loaded machine would
		// add a forwarder; forwarded_test.go covers the checks.
		cfg.CheckForwarding = false
		cfg.OnPacedSent = func(msg *wire.Message) {
			mu.Lock()
			calls[msg.ID]++
			mu.Unlock()
		}
	})
	id := c.broadcast(origin)
	plan := Broadcast(n, origin, ModeCover, Options{})
	forwarders := 0
	for _, w := range plan.Writes {
		if w > 0 {
			forwarders++
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return calls[id] }
	eventually(t, 10*time.Second, func() bool { return count() == forwarders },
		"OnPacedSent ran %d times, want once per forwarding node (%d)", count(), forwarders)
	eventually(t, 10*time.Second, func() bool { return len(c.missing(id, others(n, origin))) == 0 },
		"validators %v never delivered", c.missing(id, others(n, origin)))
	if got := count(); got != forwarders {
		t.Errorf("OnPacedSent ran %d times after delivery, want %d", got, forwarders)
	}
}
