package raintree

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// pacedTernary makes every frame paced, so every span is checked, and
// runs one level per hop: from origin 0 of 9, validator 3 gets span 3..5
// at level 2 and would forward to 4 and 5 at level 1.
func pacedTernary(cfg *Config) { cfg.LevelsPerHop, cfg.PaceBytes = 1, 1 }

func TestAHeadThatAcknowledgesButDoesNotForwardLosesItsSpan(t *testing.T) {
	const n, silent = 9, 3
	tests := []struct {
		name    string
		checked bool
		missing []int
	}{
		{"with forwarding checked, the rest of its span goes to the next validator", true, nil},
		{"without, the rest of its span is lost to RainTree", false, []int{4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutate := func(cfg *Config) { pacedTernary(cfg); cfg.CheckForwarding = tt.checked }
			c := newMockCluster(t, n, mutate)
			_ = c.nodes[silent].router.Close()
			c.startNode(c.nodes[silent], c.set, testConfig(func(cfg *Config) { mutate(cfg); cfg.Silent = true }))
			nonce := c.broadcast(0)
			plan := Broadcast(n, 0, ModeCover, Options{Silent: silentAt(n, silent), ACK: true, CheckForwarding: tt.checked})
			if !slices.Equal(plan.Uncovered, tt.missing) && !(len(plan.Uncovered) == 0 && tt.missing == nil) {
				t.Fatalf("the plan leaves %v uncovered, the test expects %v", plan.Uncovered, tt.missing)
			}
			covered := slices.DeleteFunc(others(n, 0), func(i int) bool { return slices.Contains(tt.missing, i) })
			eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, covered)) == 0 }, "missing %v", c.missing(nonce, covered))
			s := c.nodes[0].router.Stats()
			if tt.checked {
				// Validator 6 forwarded (to 7 and 8) and proved it; 3 did not,
				// and 4, which took the rest of its span, forwarded to 5.
				eventually(t, 5*time.Second, func() bool {
					s = c.nodes[0].router.Stats()
					return s.NotForwarded == 1 && s.ProofsReceived == 2
				}, "origin: %d spans not forwarded, %d proofs; want 1 and 2", s.NotForwarded, s.ProofsReceived)
				if s.Retries != 1 || s.AckTimeouts != 0 || s.Dropped.BadReceipt != 0 {
					t.Errorf("origin: %d retries, %d ACK timeouts, %d bad receipts; want 1, 0, 0",
						s.Retries, s.AckTimeouts, s.Dropped.BadReceipt)
				}
				return
			}
			if got := c.missing(nonce, tt.missing); !slices.Equal(got, tt.missing) {
				t.Errorf("missing %v, want %v", got, tt.missing)
			}
			if s.NotForwarded != 0 || s.Retries != 0 {
				t.Errorf("unchecked: %d spans not forwarded, %d retries; want 0", s.NotForwarded, s.Retries)
			}
		})
	}
}

// A validator that sits on a frame cannot talk its sender out of
// re-delegating: a proof counts only with a receipt for a frame of the
// same message inside its span, past itself, signed by that frame's head.
func TestOnlyAReceiptSignedInsideTheSpanProvesForwarding(t *testing.T) {
	const n, silent = 9, 3
	clock := newFakeClock()
	var mu sync.Mutex
	reported := map[peer.ID]int{}
	mutate := func(cfg *Config) {
		pacedTernary(cfg)
		cfg.Clock, cfg.ACKTimeout = clock, time.Hour
		cfg.OnInvalid = func(p peer.ID, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported[p]++
		}
	}
	c := newMockCluster(t, n, mutate)
	_ = c.nodes[silent].router.Close()
	c.startNode(c.nodes[silent], c.set, testConfig(func(cfg *Config) { mutate(cfg); cfg.Silent = true }))
	env, id := newEnvelopeAt(t, c.nodes[0].key, "proof", clock.Now())
	if err := c.nodes[0].router.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	origin := c.nodes[0].router
	eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsReceived == 1 }, "validator 6 never proved it forwarded")

	proof := func(signer crypto.PrivKey, msg wire.MessageID, start, length uint32) []byte {
		rc := wire.Receipt{ID: msg, SpanStart: start, SpanLen: length, Level: 1}
		sig, err := wire.SignReceipt(signer, testNetwork, rc)
		if err != nil {
			t.Fatal(err)
		}
		frame, err := proto.Marshal(&wire.RainTreeMessage{
			Kind: wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, MessageId: id[:], Level: 2, SpanStart: silent, SpanLen: 3,
			Receipt: sig, ReceiptSpanStart: start, ReceiptSpanLen: length, ReceiptLevel: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	other := wire.MessageID{0xee}
	forged := []struct {
		name  string
		frame []byte
	}{
		{"signed by the silent head itself", proof(c.nodes[silent].key, id, 4, 1)},
		{"signed by a target, for another message", proof(c.nodes[4].key, other, 4, 1)},
		{"signed by a validator outside the span", proof(c.nodes[7].key, id, 7, 1)},
		{"the head's own frame", proof(c.nodes[silent].key, id, silent, 3)},
	}
	for _, f := range forged {
		if err := c.nodes[silent].router.ackUni.Send(context.Background(), c.nodes[0].host.ID(), f.frame); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
	}
	eventually(t, 5*time.Second, func() bool { return origin.Stats().Dropped.BadReceipt == uint64(len(forged)) },
		"bad receipts counted: %d, want %d", origin.Stats().Dropped.BadReceipt, len(forged))
	mu.Lock()
	if reported[c.nodes[silent].host.ID()] != len(forged) || len(reported) != 1 {
		t.Errorf("reported %v, want the silent head %d times", reported, len(forged))
	}
	mu.Unlock()
	if s := origin.Stats(); s.ProofsReceived != 1 || s.NotForwarded != 0 {
		t.Fatalf("after forged proofs: %d proofs, %d not forwarded; want 1 and 0 (still waiting)", s.ProofsReceived, s.NotForwarded)
	}

	clock.Advance(time.Minute) // past the proof's wait, not the ACKs'
	eventually(t, 5*time.Second, func() bool { return len(c.missing(id, others(n, 0))) == 0 }, "missing %v", c.missing(id, others(n, 0)))
	if s := origin.Stats(); s.NotForwarded != 1 || s.Retries != 1 {
		t.Errorf("after the wait: %d not forwarded, %d retries; want 1 and 1", s.NotForwarded, s.Retries)
	}
}

// A receipt from inside the span does settle the wait, whoever relays
// it: a head and one of its targets that collude go undetected, and the
// rest of the span is left to gossip, as before forwarding was checked.
func TestAReceiptFromInsideTheSpanSettlesTheWait(t *testing.T) {
	const n, silent = 9, 3
	clock := newFakeClock()
	mutate := func(cfg *Config) { pacedTernary(cfg); cfg.Clock, cfg.ACKTimeout = clock, time.Hour }
	c := newMockCluster(t, n, mutate)
	_ = c.nodes[silent].router.Close()
	c.startNode(c.nodes[silent], c.set, testConfig(func(cfg *Config) { mutate(cfg); cfg.Silent = true }))
	env, id := newEnvelopeAt(t, c.nodes[0].key, "collusion", clock.Now())
	if err := c.nodes[0].router.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	origin := c.nodes[0].router
	eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsReceived == 1 }, "validator 6 never proved it forwarded")
	sig, err := wire.SignReceipt(c.nodes[4].key, testNetwork, wire.Receipt{ID: id, SpanStart: 4, SpanLen: 1, Level: 1})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind: wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, MessageId: id[:], Level: 2, SpanStart: silent, SpanLen: 3,
		Receipt: sig, ReceiptSpanStart: 4, ReceiptSpanLen: 1, ReceiptLevel: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[silent].router.ackUni.Send(context.Background(), c.nodes[0].host.ID(), frame); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsReceived == 2 }, "a valid receipt did not settle the wait")
	clock.Advance(time.Minute)
	if s := origin.Stats(); s.NotForwarded != 0 || s.Retries != 0 || s.Dropped.BadReceipt != 0 {
		t.Errorf("%d not forwarded, %d retries, %d bad receipts; want none", s.NotForwarded, s.Retries, s.Dropped.BadReceipt)
	}
	if got := c.missing(id, []int{4, 5}); !slices.Equal(got, []int{4, 5}) {
		t.Errorf("missing %v; the silent head's targets should have had nothing from RainTree", got)
	}
}
