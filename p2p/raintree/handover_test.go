package raintree

import (
	"context"
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A full node's handover, each part started by its head and one part
// (whose head the full node could not reach) by another validator, reaches
// every validator once: the heads from the full node, the rest in tree
// frames, one of them to the head that was not reached.
func TestAHandoverReachesEveryValidatorOnce(t *testing.T) {
	ecdsaKey, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		key  crypto.PrivKey
	}{
		{"from a full node with an ed25519 key", newKeys(t, 1)[0]},
		// Its peer ID is a hash: no address can be read from it.
		{"from a full node with an ECDSA key", ecdsaKey},
	} {
		t.Run(tt.name, func(t *testing.T) { handoverReachesEveryValidatorOnce(t, tt.key) })
	}
}

func handoverReachesEveryValidatorOnce(t *testing.T, fullKey crypto.PrivKey) {
	const n = 12
	c := newTCPCluster(t, n, nil)
	full, err := peer.IDFromPrivateKey(fullKey)
	if err != nil {
		t.Fatal(err)
	}
	msg, id := newEnvelope(t, fullKey, "handed over")
	targets := HandoverTargets(n, HandoverStart(n, []byte(full)), 2)
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

// Only the origin chooses the parts a validator starts, among the few its
// ID allows, on a set the validator knows, and parts may not overlap;
// anything else is refused, counted, and held against the sender unless
// the set merely changed.
func TestHandoversThatAreNotTheOriginsOwnPartsAreRefused(t *testing.T) {
	const n = 4
	var invalid atomic.Int64
	c := newTCPCluster(t, n, func(cfg *Config) {
		cfg.OnInvalid = func(peer.ID, error) { invalid.Add(1) }
	})
	fullKey := newKeys(t, 1)[0]
	full, _ := peer.IDFromPrivateKey(fullKey)
	msg, _ := newEnvelope(t, fullKey, "handed over")
	start := HandoverStart(n, []byte(full))
	thirds, ninths := HandoverTargets(n, start, 1), HandoverTargets(n, start, 2)
	r := c.nodes[0].router
	for _, tt := range []struct {
		name    string
		from    peer.ID
		hash    []byte
		parts   []Span
		invalid bool
	}{
		{"a handover by another node than the origin", c.nodes[1].host.ID(), c.set.Hash(), []Span{ninths[0].Span}, true},
		{"overlapping parts", full, c.set.Hash(), []Span{thirds[0].Span, ninths[0].Span}, true},
		{"the same part twice", full, c.set.Hash(), []Span{ninths[0].Span, ninths[0].Span}, true},
		{"a part the origin's ID does not give it", full, c.set.Hash(), []Span{{Start: start, Len: 3}}, true},
		{"no parts", full, c.set.Hash(), nil, true},
		{"a set this validator does not know", full, []byte("another set"), []Span{ninths[0].Span}, false},
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
}

// The origin may resend its handover (it cannot know what arrived), but
// each part is started once: a resend sends nothing and is counted.
func TestAResentHandoverStartsNoPartTwice(t *testing.T) {
	const n = 12
	c := newTCPCluster(t, n, nil)
	fullKey := newKeys(t, 1)[0]
	full, _ := peer.IDFromPrivateKey(fullKey)
	msg, id := newEnvelope(t, fullKey, "again")
	targets := HandoverTargets(n, HandoverStart(n, []byte(full)), 1)
	parent := c.nodes[targets[0].Index].router
	parts := []Span{targets[0].Span, targets[1].Span, targets[2].Span}
	for range 5 {
		if err := parent.RelayParts(full, msg, c.set.Hash(), parts); err != nil {
			t.Fatal(err)
		}
	}
	var others []int
	for i := range n {
		if i != targets[0].Index {
			others = append(others, i)
		}
	}
	eventually(t, 10*time.Second, func() bool { return len(c.missing(id, others)) == 0 }, "validators %v never got it", c.missing(id, others))
	eventually(t, 10*time.Second, func() bool { return c.sum(func(s Stats) uint64 { return s.AcksReceived }) == n-1 }, "ACKs")
	if sent := c.sum(func(s Stats) uint64 { return s.TreeSent }); sent != n-1 {
		t.Errorf("%d tree frames for five copies of a whole-ring handover, want %d", sent, n-1)
	}
	if dup := parent.Stats().Duplicates; dup != 4*uint64(len(parts)) {
		t.Errorf("%d resent parts counted, want %d", dup, 4*len(parts))
	}
}

// A part handed to a validator with no connection to its head either goes
// to the next validator of the part it is connected to, as a re-delegated
// span does, or to the very next one if it is connected to none, and the
// head gets a part of itself alone: a head that is down delays only
// itself.
func TestAHandedOnPartAvoidsADialToItsHead(t *testing.T) {
	t.Run("the next validator connected", func(t *testing.T) { handedOnPart(t, true) })
	t.Run("no validator of the part connected", func(t *testing.T) { handedOnPart(t, false) })
}

func handedOnPart(t *testing.T, connectNext bool) {
	const n = 12
	c := newTCPCluster(t, n, nil)
	fullKey := newKeys(t, 1)[0]
	full, _ := peer.IDFromPrivateKey(fullKey)
	msg, id := newEnvelope(t, fullKey, "around the head")
	first := HandoverTargets(n, HandoverStart(n, []byte(full)), 1)[0] // four validators
	head, part := first.Index, first.Span
	parent := c.nodes[(head+6)%n]
	next := c.nodes[(head+1)%n]
	if connectNext {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := parent.host.Connect(ctx, peer.AddrInfo{ID: next.host.ID(), Addrs: next.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := parent.router.RelayParts(full, msg, c.set.Hash(), []Span{part}); err != nil {
		t.Fatal(err)
	}
	var want []int
	for k := range part.Len {
		want = append(want, (head+k)%n)
	}
	eventually(t, 10*time.Second, func() bool { return len(c.missing(id, want)) == 0 }, "validators %v never got the part", c.missing(id, want))
	// A frame is counted once its send returns, which can be after its
	// receiver has delivered it.
	rest := CoverTargets(n, Span{Start: (head + 1) % n, Len: part.Len - 1}, PartLevel(part.Len), 2)
	eventually(t, 10*time.Second, func() bool {
		return parent.router.Stats().TreeSent >= 2 && next.router.Stats().TreeSent >= uint64(len(rest))
	}, "the parent's and the next validator's tree frames counted")
	if got := parent.router.Stats().TreeSent; got != 2 {
		t.Errorf("the parent sent %d tree frames, want 2 (the rest of the part to the next validator, the head alone)", got)
	}
	if got := next.router.Stats().TreeSent; got != uint64(len(rest)) {
		t.Errorf("the next validator sent %d tree frames, want %d", got, len(rest))
	}
	if got := c.nodes[head].router.Stats().TreeSent; got != 0 {
		t.Errorf("the head sent %d tree frames, want 0", got)
	}
}
