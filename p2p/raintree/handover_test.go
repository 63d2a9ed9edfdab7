package raintree

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A full node's handover, each part started by its head and one part
// (whose head the full node could not reach) by another validator, reaches
// every validator once: the heads from the full node, the rest in tree
// frames, one of them to the head that was not reached.
func TestAHandoverReachesEveryValidatorOnce(t *testing.T) {
	const n = 12
	c := newTCPCluster(t, n, nil)
	fullKey := newKeys(t, 1)[0]
	full, err := peer.IDFromPrivateKey(fullKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, id := newEnvelope(t, fullKey, "handed over")
	targets := HandoverTargets(n, 5, 2)
	if len(targets) != 9 {
		t.Fatalf("%d targets, want 9", len(targets))
	}
	// The last head is unreachable: the first head (the "parent") takes
	// its part with its own.
	parent, unreached := targets[0], targets[len(targets)-1]
	heads := map[int]bool{}
	for _, tg := range targets[1 : len(targets)-1] {
		heads[tg.Index] = true
		if err := c.nodes[tg.Index].router.RelayParts(full, msg, c.set.Hash(), []Span{tg.Span}); err != nil {
			t.Fatalf("RelayParts at %d: %v", tg.Index, err)
		}
	}
	heads[parent.Index] = true
	if err := c.nodes[parent.Index].router.RelayParts(full, msg, c.set.Hash(), []Span{parent.Span, unreached.Span}); err != nil {
		t.Fatalf("RelayParts at the parent: %v", err)
	}
	var rest []int
	for i := range n {
		if !heads[i] {
			rest = append(rest, i)
		}
	}
	eventually(t, 10*time.Second, func() bool { return len(c.missing(id, rest)) == 0 }, "validators %v never got the handover", c.missing(id, rest))
	eventually(t, 10*time.Second, func() bool { return c.sum(func(s Stats) uint64 { return s.AcksReceived }) == uint64(n-8) }, "ACKs")
	if sent, parts := c.sum(func(s Stats) uint64 { return s.TreeSent }), c.sum(func(s Stats) uint64 { return s.PartsRelayed }); sent != n-8 || parts != 9 {
		t.Errorf("%d tree frames for %d parts; want %d frames (one a validator not handed a part) for 9", sent, parts, n-8)
	}
	for i := range n {
		if got := c.nodes[i].got(id, true); !heads[i] && got != 1 {
			t.Errorf("validator %d delivered %d copies", i, got)
		}
	}
}

// Only the origin chooses the parts a validator starts, on a set the
// validator knows, and parts may not overlap; anything else is refused,
// counted, and held against the sender unless the set merely changed.
func TestHandoversThatAreNotTheOriginsOwnOrOverlapAreRefused(t *testing.T) {
	var invalid atomic.Int64
	c := newTCPCluster(t, 4, func(cfg *Config) {
		cfg.OnInvalid = func(peer.ID, error) { invalid.Add(1) }
	})
	fullKey := newKeys(t, 1)[0]
	full, _ := peer.IDFromPrivateKey(fullKey)
	msg, _ := newEnvelope(t, fullKey, "handed over")
	r := c.nodes[0].router
	for _, tt := range []struct {
		name    string
		from    peer.ID
		hash    []byte
		parts   []Span
		invalid bool
	}{
		{"a handover by another node than the origin", c.nodes[1].host.ID(), c.set.Hash(), []Span{{0, 2}}, true},
		{"overlapping parts", full, c.set.Hash(), []Span{{0, 3}, {2, 2}}, true},
		{"parts wrapping round onto each other", full, c.set.Hash(), []Span{{3, 3}, {0, 1}}, true},
		{"a part past the ring", full, c.set.Hash(), []Span{{4, 1}}, true},
		{"more validators than the ring", full, c.set.Hash(), []Span{{0, 5}}, true},
		{"no parts", full, c.set.Hash(), nil, true},
		{"a set this validator does not know", full, []byte("another set"), []Span{{0, 2}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, refused := invalid.Load(), r.Stats().HandoversRefused
			if err := r.RelayParts(tt.from, msg, tt.hash, tt.parts); !errors.Is(err, ErrBadHandover) {
				t.Fatalf("RelayParts = %v, want ErrBadHandover", err)
			}
			if got := r.Stats().HandoversRefused - refused; got != 1 {
				t.Errorf("%d refusals counted, want 1", got)
			}
			if held := invalid.Load() > before; held != tt.invalid {
				t.Errorf("held against the sender: %v, want %v", held, tt.invalid)
			}
		})
	}
	if s := r.Stats(); s.TreeSent != 0 || s.PartsRelayed != 0 {
		t.Errorf("refused handovers sent %d frames, relayed %d parts", s.TreeSent, s.PartsRelayed)
	}
	// The origin's own disjoint parts, wrapping round the ring, are fine.
	if err := r.RelayParts(full, msg, c.set.Hash(), []Span{{0, 1}, {3, 1}, {1, 2}}); err != nil {
		t.Errorf("a valid handover: %v", err)
	}
}
