package raintree

import (
	"bytes"
	"context"
	"fmt"
	"maps"
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
// at level 2 and would forward to 4 and 5 at level 1. Proofs may take
// testSlack: on a machine loaded by the race detector an honest head's
// proof can miss the default slack, and these tests count exactly.
func pacedTernary(cfg *Config) { cfg.LevelsPerHop, cfg.PaceBytes, cfg.ForwardSlack = 1, 1, testSlack }

const testSlack = 2 * time.Second

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

// proofCluster is a cluster of 9 on loopback TCP with paced frames checked, validator 3
// silent, every node on clock, whose origin 0 has broadcast and heard
// validator 6's proof, so it waits only for 3's. reported counts the
// peers each node's router held something against.
func proofCluster(t *testing.T, clock *fakeClock) (c *cluster, id wire.MessageID, reported func(at int) map[peer.ID]int) {
	t.Helper()
	const n, silent = 9, 3
	var mu sync.Mutex
	seen := make([]map[peer.ID]int, n)
	mutate := func(i int) func(*Config) {
		return func(cfg *Config) {
			pacedTernary(cfg)
			// The fake clock passes the slack at once: without this, the
			// validators not yet dialled would count as down.
			cfg.Clock, cfg.ACKTimeout, cfg.SkipDisconnectedAfter = clock, time.Hour, time.Hour
			cfg.Silent = i == silent
			cfg.OnInvalid = func(p peer.ID, err error) {
				mu.Lock()
				defer mu.Unlock()
				seen[i][p]++
			}
		}
	}
	for i := range seen {
		seen[i] = map[peer.ID]int{}
	}
	c = newTCPClusterEach(t, n, mutate)
	env, id := newEnvelopeAt(t, c.nodes[0].key, "proof", clock.Now())
	if err := c.nodes[0].router.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	// Its four targets (3, 6, 1, 2) acknowledged, so it waits for 3's and
	// 6's proofs, and 6's came.
	eventually(t, 5*time.Second, func() bool {
		s := c.nodes[0].router.Stats()
		return s.AcksReceived == 4 && s.ProofsReceived == 1
	}, "origin: %+v; nodes: %v", c.nodes[0].router.Stats(), func() (out []string) {
		for i, nd := range c.nodes {
			s := nd.router.Stats()
			out = append(out, fmt.Sprintf("%d: received %d, ACKs sent %d, send errors %d", i, s.TreeReceived, s.AcksSent, s.SendErrors))
		}
		return out
	}())
	return c, id, func(at int) map[peer.ID]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen[at])
	}
}

// forwardedFrame is the proof validator 3 owes origin 0 (its frame: span
// 3..5, level 2), carrying signer's receipt for a frame with span
// start+length at receiptLevel, claimed to be at claimedLevel.
func forwardedFrame(t *testing.T, signer crypto.PrivKey, msg, id wire.MessageID, start, length, signedLevel, claimedLevel uint32) []byte {
	t.Helper()
	sig, err := wire.SignReceipt(signer, testNetwork, wire.Receipt{ID: msg, SpanStart: start, SpanLen: length, Level: signedLevel})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind: wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, MessageId: id[:], Level: 2, SpanStart: 3, SpanLen: 3,
		Receipt: sig, ReceiptSpanStart: start, ReceiptSpanLen: length, ReceiptLevel: claimedLevel,
	})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// A validator that sits on a frame cannot talk its sender out of
// re-delegating: a proof counts only with a receipt for a frame of the
// same message inside its span, past itself, signed by that frame's head.
// A bad proof ends the wait at once, and is held against the head.
func TestOnlyAReceiptSignedInsideTheSpanProvesForwarding(t *testing.T) {
	other := wire.MessageID{0xee}
	// Each proof carries signer's receipt of a frame of msg with span
	// start+length, signed at one level and claimed at another.
	tests := []struct {
		name                   string
		signer                 int
		msg                    *wire.MessageID // nil: the broadcast's
		start, length          uint32
		signedLevel, claimedAt uint32
	}{
		{"signed by the silent head itself", 3, nil, 4, 1, 1, 1},
		{"signed by a target, for another message", 4, &other, 4, 1, 1, 1},
		{"signed by a target, claimed at another level", 4, nil, 4, 1, 1, 2},
		{"signed by a validator outside the span", 7, nil, 7, 1, 1, 1},
		{"the head's own frame", 3, nil, 3, 3, 2, 2},
		{"a frame beyond the ring", 4, nil, 200, 1, 1, 1},
		{"a frame at 2^31, negative as a 32-bit int", 4, nil, 1<<31 + 2, 1, 1, 1},
		{"a frame of no length", 4, nil, 4, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			c, id, reported := proofCluster(t, clock)
			origin, head := c.nodes[0].router, c.nodes[3]
			msg := id
			if tt.msg != nil {
				msg = *tt.msg
			}
			proof := forwardedFrame(t, c.nodes[tt.signer].key, msg, id, tt.start, tt.length, tt.signedLevel, tt.claimedAt)
			for range 2 { // the second finds no wait: no check, no penalty
				if err := head.router.proofUni.Send(context.Background(), c.nodes[0].host.ID(), proof); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsUnexpected == 1 }, "the second proof was not counted: %+v", origin.Stats())
			// No clock moved: the bad proof itself ended the wait.
			eventually(t, 5*time.Second, func() bool { return len(c.missing(id, others(9, 0))) == 0 }, "missing %v", c.missing(id, others(9, 0)))
			// Validator 4, which took the rest of the span, proves it
			// forwarded to 5.
			eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsReceived == 2 }, "4 never proved it forwarded")
			s := origin.Stats()
			if s.Dropped.BadReceipt != 1 || s.NotForwarded != 1 || s.Retries != 1 {
				t.Errorf("origin: %d bad receipts, %d not forwarded, %d retries; want 1, 1, 1",
					s.Dropped.BadReceipt, s.NotForwarded, s.Retries)
			}
			if got := reported(0); got[head.host.ID()] != 1 || len(got) != 1 {
				t.Errorf("origin reported %v, want the silent head once", got)
			}
		})
	}
}

// A receipt from inside the span does settle the wait, whoever relays
// it: a head and one of its targets that collude go undetected, and the
// rest of the span is left to gossip, as before forwarding was checked.
func TestAReceiptFromInsideTheSpanSettlesTheWait(t *testing.T) {
	clock := newFakeClock()
	c, id, _ := proofCluster(t, clock)
	origin := c.nodes[0].router
	if err := c.nodes[3].router.proofUni.Send(context.Background(), c.nodes[0].host.ID(), forwardedFrame(t, c.nodes[4].key, id, id, 4, 1, 1, 1)); err != nil {
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

// The wait for a proof is ForwardFactor times the time from the send to
// the ACK, plus ForwardSlack. On a clock that did not move during the
// exchange, that is the slack (here testSlack) to the nanosecond.
func TestTheProofWaitEndsAtItsDeadline(t *testing.T) {
	for _, tt := range []struct {
		elapsed time.Duration
		factor  float64
		want    time.Duration
	}{
		{0, DefaultForwardFactor, DefaultForwardSlack},
		{-time.Second, DefaultForwardFactor, DefaultForwardSlack},
		{400 * time.Millisecond, DefaultForwardFactor, 800*time.Millisecond + DefaultForwardSlack},
		{400 * time.Millisecond, 1.25, 500*time.Millisecond + DefaultForwardSlack},
	} {
		if got := forwardWait(tt.elapsed, tt.factor, DefaultForwardSlack); got != tt.want {
			t.Errorf("forwardWait(%v, %v) = %v, want %v", tt.elapsed, tt.factor, got, tt.want)
		}
	}
	clock := newFakeClock()
	c, id, _ := proofCluster(t, clock)
	origin := c.nodes[0].router
	clock.Advance(testSlack - time.Nanosecond)
	if s := origin.Stats(); s.NotForwarded != 0 {
		t.Fatalf("gave up %v early", time.Nanosecond)
	}
	clock.Advance(time.Nanosecond)
	eventually(t, 5*time.Second, func() bool { return len(c.missing(id, others(9, 0))) == 0 }, "missing %v", c.missing(id, others(9, 0)))
	if s := origin.Stats(); s.NotForwarded != 1 || s.Retries != 1 {
		t.Errorf("at the deadline: %d not forwarded, %d retries; want 1 and 1", s.NotForwarded, s.Retries)
	}
}

// A head checks a target's receipt before relaying it: a receipt that
// does not verify is held against the target and not relayed, and of the
// valid ones only the first is.
func TestAHeadRelaysOnlyAValidReceiptAndOnlyOnce(t *testing.T) {
	var mu sync.Mutex
	reported := map[peer.ID]int{}
	c := newMockCluster(t, 9, func(cfg *Config) {
		pacedTernary(cfg)
		cfg.OnInvalid = func(p peer.ID, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported[p]++
		}
	})
	env, id := newEnvelope(t, c.nodes[0].key, "vouch")
	head := c.nodes[3].router
	// The frame 3 sent 4, on behalf of the frame 0 sent 3.
	d := delegation{view: head.cur, mode: ModeCover, target: Target{Index: 4, Level: 1, Span: Span{Start: 4, Len: 1}}, msg: env,
		vouch: &vouch{to: c.nodes[0].host.ID(), msgID: id, level: 2, span: Span{Start: 3, Len: 3}}}
	target := c.nodes[4].host.ID()
	ack := func(signer crypto.PrivKey) *wire.RainTreeMessage {
		sig, err := wire.SignReceipt(signer, testNetwork, receiptOf(d))
		if err != nil {
			t.Fatal(err)
		}
		return &wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_ACK, Level: 1, SpanStart: 4, SpanLen: 1, MessageId: id[:], Receipt: sig}
	}
	head.vouchFor(target, d, ack(c.nodes[5].key)) // signed by another validator
	if s := head.Stats(); s.Dropped.BadReceipt != 1 || d.vouch.sent.Load() {
		t.Fatalf("a bad receipt: %d counted, relayed %v; want 1, false", s.Dropped.BadReceipt, d.vouch.sent.Load())
	}
	head.vouchFor(target, d, ack(c.nodes[4].key))
	head.vouchFor(target, d, ack(c.nodes[4].key))
	origin := c.nodes[0].router
	eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsUnexpected == 1 }, "the proof did not reach 0")
	if s := head.Stats(); s.ProofsSent != 1 || s.Dropped.BadReceipt != 1 {
		t.Errorf("head: %d proofs sent, %d bad receipts; want 1 and 1", s.ProofsSent, s.Dropped.BadReceipt)
	}
	if s := origin.Stats(); s.Dropped.BadReceipt != 0 {
		t.Errorf("the relayed receipt was bad at 0: %+v", s.Dropped)
	}
	mu.Lock()
	defer mu.Unlock()
	if reported[target] != 1 || len(reported) != 1 {
		t.Errorf("reported %v, want the target once", reported)
	}
}

// ACKs and proofs travel on streams of their own, so a busy head may read
// a target's proof before its ACK. The proof settles the frame, and the
// ACK, when it comes, is no stranger: its receipt is what the head owes
// its own sender.
func TestAnACKThatComesAfterItsProofStillVouches(t *testing.T) {
	c := newMockCluster(t, 9, pacedTernary)
	env, id := newEnvelope(t, c.nodes[0].key, "overtaken")
	head, target := c.nodes[3].router, c.nodes[4].host.ID()
	// The frame 3 sent 4 with 4..5, on behalf of the frame 0 sent 3.
	d := delegation{view: head.cur, mode: ModeCover, target: Target{Index: 4, Level: 1, Span: Span{Start: 4, Len: 2}}, msg: env,
		sentAt: head.clock.Now(), vouch: &vouch{to: c.nodes[0].host.ID(), msgID: id, level: 2, span: Span{Start: 3, Len: 3}}}
	head.mu.Lock()
	head.acks.Add(ackKey{peer: target, msgID: id, level: 1, span: d.target.Span}, head.clock.Now().Add(time.Hour), d)
	head.mu.Unlock()
	sign := func(signer crypto.PrivKey, rc wire.Receipt) []byte {
		sig, err := wire.SignReceipt(signer, testNetwork, rc)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	// 5's receipt of 4's frame, relayed by 4, comes first.
	five := wire.Receipt{ID: id, SpanStart: 5, SpanLen: 1, Level: 1}
	head.onForwarded(target, &wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, MessageId: id[:], Level: 1,
		SpanStart: 4, SpanLen: 2, Receipt: sign(c.nodes[5].key, five), ReceiptSpanStart: 5, ReceiptSpanLen: 1, ReceiptLevel: 1})
	head.onAck(target, &wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_ACK, Level: 1, SpanStart: 4, SpanLen: 2,
		MessageId: id[:], Receipt: sign(c.nodes[4].key, receiptOf(d))})
	s := head.Stats()
	if s.ProofsReceived != 1 || s.AcksReceived != 1 || s.AcksUnexpected != 0 {
		t.Errorf("%d proofs, %d ACKs, %d unexpected; want 1, 1 and 0", s.ProofsReceived, s.AcksReceived, s.AcksUnexpected)
	}
	origin := c.nodes[0].router
	eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsUnexpected == 1 }, "the head did not vouch to 0")
	if n := head.acks.Len(); n != 0 {
		t.Errorf("%d waits left, want none (no wait for a proof already had)", n)
	}
}

// A head that proved no forwarding is a laggard for LaggardTTL: the next
// paced frame it would head goes to it alone, and the rest of its span to
// the next validator at once, with no second wait.
func TestALaggardGetsFramesOfItselfAloneUntilItsTimeIsUp(t *testing.T) {
	const n, silent = 9, 3
	tests := []struct {
		name         string
		ttl          time.Duration
		notForwarded uint64
		skipped      uint64
	}{
		{"a laggard is passed over at once", DefaultLaggardTTL, 1, 1},
		{"without laggards, each frame waits for its proof", 0, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newMockClusterEach(t, n, func(i int) func(*Config) {
				return func(cfg *Config) { pacedTernary(cfg); cfg.LaggardTTL, cfg.Silent = tt.ttl, i == silent }
			})
			origin := c.nodes[0].router
			for round := 1; round <= 2; round++ { // the laggard, 3, is among those that must deliver
				id := c.broadcast(0)
				eventually(t, 10*time.Second, func() bool { return len(c.missing(id, others(n, 0))) == 0 },
					"round %d: missing %v", round, c.missing(id, others(n, 0)))
				eventually(t, 5*time.Second, func() bool { return origin.Stats().ProofsReceived == uint64(2*round) },
					"round %d: %d proofs, want %d (6 and the next head of 3's span)", round, origin.Stats().ProofsReceived, 2*round)
			}
			if s := origin.Stats(); s.NotForwarded != tt.notForwarded || s.SkippedLaggards != tt.skipped {
				t.Errorf("%d not forwarded, %d laggards passed over; want %d and %d", s.NotForwarded, s.SkippedLaggards, tt.notForwarded, tt.skipped)
			}
		})
	}
}

// The root of a full node's block proves to the full node that it started
// it: it hands over, once, the first receipt one of its targets signed,
// which verifies against that target's key in the set; a message too
// small to be paced owes no proof.
func TestARootProvesAFullNodesBlockOnceWithATargetsReceipt(t *testing.T) {
	const n = 9
	for _, paced := range []bool{true, false} {
		t.Run(fmt.Sprintf("paced %v", paced), func(t *testing.T) {
			c := newMockCluster(t, n, func(cfg *Config) {
				cfg.LevelsPerHop, cfg.ForwardSlack = 1, testSlack
				if paced {
					cfg.PaceBytes = 1
				}
			})
			msg, id := newEnvelope(t, newKeys(t, 1)[0], "a full node's block")
			var mu sync.Mutex
			var proofs []wire.Proof
			if err := c.nodes[0].router.RelayProving(msg, func(p wire.Proof) { mu.Lock(); proofs = append(proofs, p); mu.Unlock() }); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, func() bool { return len(c.missing(id, others(n, 0))) == 0 }, "missing %v", c.missing(id, others(n, 0)))
			if paced { // an ACK is counted before its receipt is relayed
				eventually(t, 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(proofs) > 0 }, "the proof")
			}
			// Every frame of the root answered, late (after a retry) or not,
			// and none was a stranger: an ACK read after its head's proof
			// (under the race detector, about one run in five) is
			// expected too (TestAnACKThatComesAfterItsProofStillVouches).
			rootFrames := uint64(len(OriginTargets(ModeCover, n, 0, 1)))
			eventually(t, 30*time.Second, func() bool {
				s := c.nodes[0].router.Stats()
				return s.AcksReceived+s.AckTimeouts >= rootFrames
			}, "the root's ACKs: %+v", c.nodes[0].router.Stats())
			if s := c.nodes[0].router.Stats(); s.AcksUnexpected != 0 {
				t.Errorf("%d unexpected ACKs at the root", s.AcksUnexpected)
			}
			mu.Lock()
			defer mu.Unlock()
			if !paced {
				if len(proofs) != 0 {
					t.Fatalf("%d proofs of a small message", len(proofs))
				}
				return
			}
			if len(proofs) != 1 {
				t.Fatalf("%d proofs, want 1", len(proofs))
			}
			p := proofs[0]
			head := int(p.Receipt.SpanStart)
			if p.Receipt.ID != id || head == 0 || head >= n || int(p.Receipt.SpanLen) < wire.MinProofSpan(n) {
				t.Fatalf("proof of %+v", p.Receipt)
			}
			if !bytes.Equal(p.SetHash, c.set.Hash()) {
				t.Errorf("the proof names set %x, not the root's %x", p.SetHash, c.set.Hash())
			}
			if err := wire.VerifyReceipt(c.set.At(head).PublicKey, testNetwork, p.Receipt, p.Sig); err != nil {
				t.Fatalf("the proof does not verify against its head's key: %v", err)
			}
		})
	}
}

// A laggard passed over gets a frame of itself alone, which reports to no
// Broadcast: the frame it replaces reports its first attempt once. When
// the alone frame reported too, a Broadcast that stopped reading (its ctx
// ended) left the uplink's sender blocked on its full results, no paced
// frame left again, and Close waited for ever.
func TestAPassedOverLaggardReportsNoSecondResult(t *testing.T) {
	const n, origin, laggard = 9, 0, 3
	c := newMockCluster(t, n, pacedTernary)
	r := c.nodes[origin].router
	r.mu.Lock()
	r.laggards[c.set.At(laggard).PeerID] = r.clock.Now()
	r.mu.Unlock()
	env, id := newEnvelope(t, c.nodes[origin].key, "block")
	// What a Broadcast leaves behind when its ctx ends at once: results
	// nobody reads.
	if _, _, err := r.originate(env, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return r.Stats().SkippedLaggards == 1 }, "the laggard was not passed over")
	eventually(t, 10*time.Second, func() bool { return len(c.missing(id, others(n, origin))) == 0 },
		"validators %v never got the block past the laggard", c.missing(id, others(n, origin)))
	done := make(chan struct{})
	go func() { _ = r.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting: the uplink's sender is blocked on a result nobody reads")
	}
}

// Attack: a head that proves a frame before acknowledging it, and then
// repeats the proof, settles nothing more, and keeps the frame's wait for
// its late ACK no longer than ACKTimeout after the first proof.
func TestARepeatedProofKeepsALateACKWaitNoLonger(t *testing.T) {
	clock := newFakeClock()
	c := newMockCluster(t, 9, func(cfg *Config) {
		pacedTernary(cfg)
		cfg.Clock, cfg.ACKTimeout, cfg.SkipDisconnectedAfter = clock, time.Second, time.Hour
	})
	env, id := newEnvelopeAt(t, c.nodes[0].key, "pinned", clock.Now())
	sender, head := c.nodes[3].router, c.nodes[4].host.ID()
	d := delegation{view: sender.cur, mode: ModeCover, target: Target{Index: 4, Level: 1, Span: Span{Start: 4, Len: 2}}, msg: env, sentAt: clock.Now()}
	key := ackKey{peer: head, msgID: id, level: 1, span: d.target.Span}
	sender.mu.Lock()
	sender.acks.Add(key, clock.Now().Add(time.Hour), d) // a frame sent, its ACK awaited
	sender.armLocked()
	sender.mu.Unlock()
	sig, err := wire.SignReceipt(c.nodes[5].key, testNetwork, wire.Receipt{ID: id, SpanStart: 5, SpanLen: 1, Level: 1})
	if err != nil {
		t.Fatal(err)
	}
	proof := &wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, MessageId: id[:], Level: 1,
		SpanStart: 4, SpanLen: 2, Receipt: sig, ReceiptSpanStart: 5, ReceiptSpanLen: 1, ReceiptLevel: 1}
	sender.onForwarded(head, proof)
	for range 30 { // 27 s, each repeat just before the ACK's wait would run out
		clock.Advance(900 * time.Millisecond)
		sender.onForwarded(head, proof)
	}
	sender.mu.Lock()
	waits := len(sender.acks.byKey[key])
	sender.mu.Unlock()
	if s := sender.Stats(); waits != 0 || s.ProofsReceived != 1 || s.ProofsUnexpected != 30 {
		t.Fatalf("after 27 s of repeated proofs (ACKTimeout 1 s): %d waits held, %d proofs taken, %d unexpected; want 0, 1, 30",
			waits, s.ProofsReceived, s.ProofsUnexpected)
	}
}
