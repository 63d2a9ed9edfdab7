package background

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// startValidator starts a validator's router on real hosts whose handler
// records what it gets and calls onSubmit for a full node's submission.
func startValidator(t *testing.T, cfg Config, onSubmit func(v *node, from peer.ID, msg *wire.Message)) *node {
	t.Helper()
	cfg.RainTreeValidator, cfg.ProvesSubmissions = true, true
	v := &node{h: newHost(t), in: &inbox{}}
	r, err := New(v.h, cfg, func(from peer.ID, msg *wire.Message, via Via, h wire.Handover) {
		v.in.handle(from, msg, via, h)
		if via == ViaSubmit && onSubmit != nil {
			onSubmit(v, from, msg)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	v.r = r
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

// Attack: the parent a full node hands its block to takes it and starts
// nothing, or answers with a proof it forged. The full node waits only
// SubmitProofWait for a proof signed by another validator of the set,
// then passes that parent over and hands the block to its next parent,
// which starts it; a valid proof keeps the block with its parent. The
// fallback is an hour, so only the proof decides.
func TestAFullNodeHandsItsBlockOnWhenItsParentProvesNothing(t *testing.T) {
	xKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	// x, y and z are validators of the set that do not run: five make a
	// ring whose root sends frames of two validators (wire.MinProofSpan).
	x, y, z := keyID(t, xKey), keyID(t, nil), keyID(t, nil)
	setHash := []byte("the set")
	for _, tc := range []struct {
		name string
		// proof is what the parent answers with, given the set's ring;
		// nil for nothing.
		proof func(t *testing.T, parent *node, ring []peer.ID, msg *wire.Message) *wire.Proof
		// valid: the proof is accepted; penalised: it is held against
		// the parent; late: a valid proof comes after the wait;
		// otherSet: the proof is on another validator set.
		valid, penalised, late, otherSet bool
	}{
		{name: "the parent proves with another validator's receipt", valid: true,
			proof: func(t *testing.T, _ *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, xKey, setHash, ring, x, msg, 2)
			}},
		{name: "the parent stays silent"},
		{name: "the parent signs another validator's receipt with its own key", penalised: true,
			proof: func(t *testing.T, parent *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, parent.h.Peerstore().PrivKey(parent.h.ID()), setHash, ring, x, msg, 2)
			}},
		{name: "the parent proves with its own receipt", penalised: true,
			proof: func(t *testing.T, parent *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, parent.h.Peerstore().PrivKey(parent.h.ID()), setHash, ring, parent.h.ID(), msg, 2)
			}},
		{name: "the parent proves a frame of its target alone", penalised: true,
			proof: func(t *testing.T, _ *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, xKey, setHash, ring, x, msg, 1)
			}},
		{name: "the parent proves after the wait, and is a parent again", late: true,
			proof: func(t *testing.T, _ *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, xKey, setHash, ring, x, msg, 2)
			}},
		{name: "the parent proves on another set: it proved nothing, and is not penalised", otherSet: true,
			proof: func(t *testing.T, _ *node, ring []peer.ID, msg *wire.Message) *wire.Proof {
				return receiptProof(t, xKey, []byte("another set"), ring, x, msg, 2)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("proof")
			cfg.Gossip.LazyAmongValidators = true
			cfg.Gossip.LargeBytes = 1 << 10
			cfg.Gossip.SubmitProofWait = 300 * time.Millisecond
			switch { // room for a loaded machine: the proof must win
			case tc.valid:
				cfg.Gossip.SubmitProofWait = 10 * time.Second
			case tc.otherSet: // and come while the wait runs
				cfg.Gossip.SubmitProofWait = 2 * time.Second
			}
			cfg.Gossip.LargeSubmitFallback = time.Hour
			cfg.Gossip.UnprovenParentTTL = 24 * time.Hour
			var ring []peer.ID
			var first peer.ID
			var full atomic.Pointer[Router] // the full node's, for the answers
			answer := func(v *node, from peer.ID, msg *wire.Message) {
				if d := v.in.deliveries(msg); len(d) != 1 || !d[0].wantProof {
					t.Errorf("the block came without asking for a proof: %+v", d)
				}
				if v.h.ID() != first {
					go v.r.Republish(context.Background(), msg) //nolint:errcheck // the test checks the outcome
					return
				}
				switch {
				case tc.late:
					p := *tc.proof(t, v, ring, msg)
					// Sent once the block has gone to the next parent.
					go func() {
						for end := time.Now().Add(5 * time.Second); full.Load().Stats().Resubmitted == 0 && time.Now().Before(end); {
							time.Sleep(10 * time.Millisecond)
						}
						v.r.SendProof(from, p)
					}()
				case tc.proof != nil:
					v.r.SendProof(from, *tc.proof(t, v, ring, msg))
				}
			}
			a, b := startValidator(t, cfg, answer), startValidator(t, cfg, answer)
			f := startNode(t, cfg)
			full.Store(f.r)
			ring = []peer.ID{a.h.ID(), b.h.ID(), x, y, z}
			f.r.SetValidatorIDs(setHash, ring)
			var parent, next *node
			first, parent, next = parentAndNext(t, f, a, b)

			msg := envelope(t, f, strings.Repeat("b", 2<<10))
			if err := f.r.Submit(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the parent getting the block", func() bool { return len(parent.in.deliveries(msg)) == 1 })
			if tc.otherSet {
				eventually(t, 5*time.Second, "the proof ignored", func() bool { return f.r.Stats().ProofsUnexpected == 1 })
			}
			// A parent that proved on another set is passed over for
			// the block's fallback (an hour), one that proved nothing
			// for UnprovenParentTTL (a day).
			defer func() {
				f.r.lazy.mu.Lock()
				left := time.Until(f.r.lazy.passedOver[first].until)
				f.r.lazy.mu.Unlock()
				if short := left < 2*time.Hour; !tc.valid && !tc.late && short != tc.otherSet {
					t.Errorf("the parent is passed over for %v more", left)
				}
			}()
			if tc.valid {
				eventually(t, 5*time.Second, "the proof", func() bool { return f.r.Stats().ProofsAccepted == 1 })
				// Proven, the block waits for the fallback, an hour away.
				if due, ok := f.r.later.next(); !ok || time.Until(due) < 30*time.Minute {
					t.Fatalf("the proven block is due in %v", time.Until(due))
				}
				if s := f.r.Stats(); s.SubmitUnproven != 0 || s.Resubmitted != 0 || len(next.in.deliveries(msg)) != 0 {
					t.Fatalf("a proven block was handed on: %+v", s)
				}
				if f.r.Parent() != first {
					t.Fatal("a parent that proved its block was passed over")
				}
				if !f.r.have.forwardedSince(first, time.Now().Add(-forwardingWindow)) {
					t.Fatal("a parent that proved its block does not count as forwarding")
				}
				return
			}
			eventually(t, 5*time.Second, "the next parent getting the block", func() bool {
				d := next.in.deliveries(msg)
				return len(d) == 1 && d[0].via == ViaSubmit
			})
			eventually(t, 5*time.Second, "the hand-over counted", func() bool { return f.r.Stats().Resubmitted == 1 })
			if f.r.have.forwardedSince(first, time.Now().Add(-forwardingWindow)) {
				t.Fatal("a parent that proved nothing counts as forwarding")
			}
			s := f.r.Stats()
			if s.SubmitUnproven != 1 || s.ProofsAccepted != 0 || s.SubmitFallbacks != 0 {
				t.Fatalf("unproven %d, proofs accepted %d, fallbacks %d; want 1, 0, 0", s.SubmitUnproven, s.ProofsAccepted, s.SubmitFallbacks)
			}
			if tc.penalised {
				eventually(t, 5*time.Second, "the rejection", func() bool { return f.r.Stats().ProofsRejected == 1 })
			} else if s.ProofsRejected != 0 {
				t.Fatalf("rejected %d proofs", s.ProofsRejected)
			}
			if tc.late {
				eventually(t, 5*time.Second, "the late proof", func() bool { return f.r.Stats().ProofsUnexpected == 1 })
				eventually(t, 5*time.Second, "the parent restored", func() bool { return !f.r.lazy.isPassedOver(first) })
				return
			}
			if got := f.r.Parent(); got != next.h.ID() {
				t.Fatalf("the parent is %s after it proved nothing, want the next one", got)
			}
		})
	}
}

// Attack on real hosts: a parent that takes a full node's block stream
// and never reads it holds the block for the unicast write timeout, and
// then the block goes to the next parent, as for a parent that proves
// nothing, and the one that did not read is passed over; it used to be
// published on gossip, the parent kept for the next block.
func TestAParentThatDoesNotReadTheBlockIsPassedOver(t *testing.T) {
	const net = "proof"
	cfg := testConfig(net)
	cfg.MaxMessageSize = 2 << 20 // a block beyond the stream's window (yamux's 256 KiB)
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.LargeBytes = 1 << 10
	cfg.Gossip.SubmitProofWait = 300 * time.Millisecond
	cfg.Gossip.LargeSubmitFallback = time.Hour
	cfg.Gossip.UnprovenParentTTL = 24 * time.Hour
	cfg.Unicast.WriteTimeout = time.Second
	forward := func(v *node, _ peer.ID, msg *wire.Message) {
		go v.r.Republish(context.Background(), msg) //nolint:errcheck // the test checks the outcome
	}
	a, b := startValidator(t, cfg, forward), startValidator(t, cfg, forward)
	f := startNode(t, cfg)
	f.r.SetValidatorIDs([]byte("the set"), []peer.ID{a.h.ID(), b.h.ID(), keyID(t, nil), keyID(t, nil), keyID(t, nil)})
	_, parent, next := parentAndNext(t, f, a, b)
	neverRead(t, parent.h, UnicastProtocolID(net))

	msg := envelope(t, f, strings.Repeat("b", 1<<20))
	start := time.Now()
	if err := f.r.Submit(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Submit took %v on a parent that does not read (write timeout 1 s)", took)
	}
	eventually(t, 5*time.Second, "the next parent getting the block", func() bool {
		d := next.in.deliveries(msg)
		return len(d) == 1 && d[0].via == ViaSubmit
	})
	eventually(t, 5*time.Second, "the hand-over counted", func() bool { return f.r.Stats().Resubmitted == 1 })
	if s := f.r.Stats(); s.Resubmitted != 1 || s.SubmitErrors < 1 || s.SubmitFallbacks != 0 {
		t.Fatalf("handed on %d times, %d submit errors, %d fallbacks; want 1, at least 1, 0", s.Resubmitted, s.SubmitErrors, s.SubmitFallbacks)
	}
	if got := f.r.Parent(); got != next.h.ID() {
		t.Fatalf("the parent is %s after it did not read its block, want the next one", got)
	}
}

// parentAndNext connects the full node f to the validators a and b, and
// returns, once f is ready and knows both offer proofs, the parent f
// chose and the other.
func parentAndNext(t *testing.T, f, a, b *node) (first peer.ID, parent, next *node) {
	t.Helper()
	connect(t, f.h, a.h)
	connect(t, f.h, b.h)
	eventually(t, 5*time.Second, "f's parent", func() bool { first = f.r.Parent(); return first != "" })
	parent, next = a, b
	if first == b.h.ID() {
		parent, next = b, a
	}
	waitReady(t, f, 2)
	waitOffersProofs(t, f, a, b)
	return first, parent, next
}

// keyID is key's peer ID, or a fresh key's for nil.
func keyID(t *testing.T, key crypto.PrivKey) peer.ID {
	t.Helper()
	if key == nil {
		var err error
		if key, _, err = crypto.GenerateEd25519Key(nil); err != nil {
			t.Fatal(err)
		}
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// receiptProof is the proof made of signer's receipt of a frame of msg of
// span validators headed by head, an index of ring, the set setHash.
func receiptProof(t *testing.T, signer crypto.PrivKey, setHash []byte, ring []peer.ID, head peer.ID, msg *wire.Message, span uint32) *wire.Proof {
	t.Helper()
	i := 0
	for ring[i] != head {
		i++
	}
	rc := wire.Receipt{ID: msg.ID, SpanStart: uint32(i), SpanLen: span, Level: 1}
	sig, err := wire.SignReceipt(signer, "proof", rc)
	if err != nil {
		t.Fatal(err)
	}
	return &wire.Proof{Receipt: rc, Sig: sig, SetHash: setHash}
}

// waitOffersProofs waits until identify has told n that the validators
// vs answer a block's want_proof.
func waitOffersProofs(t *testing.T, n *node, vs ...*node) {
	t.Helper()
	id := SubmitProofProtocolID("proof")
	eventually(t, 5*time.Second, "identify listing proofs", func() bool {
		for _, v := range vs {
			if ok, err := n.h.Peerstore().SupportsProtocols(v.h.ID(), id); err != nil || len(ok) == 0 {
				return false
			}
		}
		return true
	})
}

// A validator of an older release does not list SubmitProofProtocolID: a
// full node hands it its block without asking for a proof, and the block
// waits for its fallback, as before proofs; a parent that never brought
// it back is passed over then.
func TestAFullNodeAsksNoProofOfAParentThatDoesNotOfferIt(t *testing.T) {
	cfg := testConfig("proof")
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.LargeBytes = 1 << 10
	cfg.Gossip.SubmitProofWait = 100 * time.Millisecond
	cfg.Gossip.SubmitFallback, cfg.Gossip.LargeSubmitFallback = 500*time.Millisecond, 500*time.Millisecond
	old := startValidator(t, cfg, nil)
	old.h.RemoveStreamHandler(SubmitProofProtocolID(cfg.NetworkID))
	f := startNode(t, cfg)
	f.r.SetValidatorIDs(nil, []peer.ID{old.h.ID(), keyID(t, nil), keyID(t, nil), keyID(t, nil), keyID(t, nil)})
	connect(t, f.h, old.h)
	eventually(t, 5*time.Second, "f's parent", func() bool { return f.r.Parent() == old.h.ID() })
	waitReady(t, f, 1)
	// Identify has run once the protocols of the old validator are known.
	eventually(t, 5*time.Second, "identify", func() bool {
		ps, err := f.h.Peerstore().GetProtocols(old.h.ID())
		return err == nil && len(ps) > 0
	})
	msg := envelope(t, f, strings.Repeat("b", 2<<10))
	if err := f.r.Submit(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the parent getting the block", func() bool { return len(old.in.deliveries(msg)) == 1 })
	if d := old.in.deliveries(msg)[0]; d.wantProof {
		t.Fatal("a parent that offers no proofs was asked for one")
	}
	// It waits for its fallback, never for a proof; the parent, which
	// never brought it back, is then passed over all the same.
	eventually(t, 5*time.Second, "the fallback", func() bool { return f.r.Stats().SubmitFallbacks == 1 })
	if s := f.r.Stats(); s.SubmitUnproven != 0 || s.Resubmitted != 0 || !f.r.lazy.isPassedOver(old.h.ID()) {
		t.Fatalf("unproven %d, resubmitted %d, passed over %v; want 0, 0, true", s.SubmitUnproven, s.Resubmitted, f.r.lazy.isPassedOver(old.h.ID()))
	}
}

// A block's proof wait grows with its size, in proportion: a block of a
// MiB of payload, a little more on the wire, waits about SubmitProofWait,
// not twice it; a message below LargeBytes needs no proof.
func TestTheProofWaitFollowsTheBlocksSize(t *testing.T) {
	g := DefaultGossipParams()
	const mib = 1 << 20
	for _, tt := range []struct {
		size int
		want time.Duration
	}{
		{g.LargeBytes - 1, 0},
		{g.LargeBytes, g.SubmitProofWait},
		{mib + 200, g.SubmitProofWait + g.SubmitProofWait*200/mib},
		{4 * mib, 4 * g.SubmitProofWait},
	} {
		if got := g.ProofWait(tt.size); got != tt.want {
			t.Errorf("ProofWait(%d) = %v, want %v", tt.size, got, tt.want)
		}
	}
}

// A validator in the mesh that sends us a copy of a message, first or
// again, forwards from then on; an IDONTWANT is no sign of it (pubsub
// sends one for what it receives, forwarded or not), and a validator
// pruned from the mesh still does until it disconnects; a peer that is
// not a validator never forwards.
func TestAValidatorForwardsWhenItSendsUsACopy(t *testing.T) {
	const topic = "t"
	v, w, other := peer.ID("validator"), peer.ID("another validator"), peer.ID("full node")
	h := testHaveSignals(topic, map[peer.ID]bool{v: true, w: true}, 16)
	start := time.Now()
	for _, p := range []peer.ID{v, w, other} {
		h.graft(p, topic)
	}
	h.idontwant(v, dontWant(strings.Repeat("a", 32)))
	if h.forwardedSince(v, start) {
		t.Fatal("an IDONTWANT counts as forwarding")
	}
	copyFrom := func(p peer.ID) *pubsub.Message {
		return &pubsub.Message{Message: gossipMsg(topic), ID: strings.Repeat("c", 32), ReceivedFrom: p}
	}
	h.delivered(copyFrom(v))
	h.duplicate(copyFrom(w))
	h.delivered(copyFrom(other))
	if !h.forwardedSince(v, start) || !h.forwardedSince(w, start) || h.forwardedSince(other, start) {
		t.Fatalf("forwarding: first copy %v, second copy %v, a full node's %v; want true, true, false",
			h.forwardedSince(v, start), h.forwardedSince(w, start), h.forwardedSince(other, start))
	}
	if h.forwardedSince(v, time.Now().Add(time.Minute)) {
		t.Fatal("a validator forwards beyond when it last did")
	}
	h.prune(v, topic)
	if !h.forwardedSince(v, start) {
		t.Fatal("a validator pruned from the mesh lost what it showed of its forwarding")
	}
	h.gone(v)
	if h.forwardedSince(v, start) {
		t.Fatal("a validator that disconnected still forwards")
	}
}

// A validator that advertises messages of our topic in an IHAVE forwards
// from then on, in our mesh or not (pubsub advertises only what it
// accepted and so forwarded); an empty IHAVE, one for another topic, or
// a peer outside the set shows nothing.
func TestAValidatorForwardsWhenItAdvertisesMessages(t *testing.T) {
	const topic = "t"
	v, fn := peer.ID("validator"), peer.ID("full node")
	ihave := func(topic string, ids ...string) *pb.ControlMessage {
		return &pb.ControlMessage{Ihave: []*pb.ControlIHave{{TopicID: &topic, MessageIDs: ids}}}
	}
	id := strings.Repeat("m", 32)
	for _, tt := range []struct {
		name string
		from peer.ID
		ctl  *pb.ControlMessage
		want bool
	}{
		{"a validator outside the mesh advertising our topic forwards", v, ihave(topic, id), true},
		{"an IHAVE of another topic shows nothing", v, ihave("other", id), false},
		{"an IHAVE with no IDs shows nothing", v, ihave(topic), false},
		{"a full node advertising is no validator", fn, ihave(topic, id), false},
		{"an RPC without control shows nothing", v, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := testHaveSignals(topic, map[peer.ID]bool{v: true}, 16)
			start := time.Now()
			h.ihave(tt.from, tt.ctl)
			if got := h.forwardedSince(tt.from, start); got != tt.want {
				t.Fatalf("forwards = %v, want %v", got, tt.want)
			}
		})
	}
}

// A block goes to a parent that forwards on gossip: the current one if
// it does, else the connected validator that does, not one passed over,
// and that one becomes the parent; with nobody forwarding the parent
// stays.
func TestABlockGoesToAParentThatForwards(t *testing.T) {
	cfg := testConfig("speak")
	cfg.Gossip.LazyAmongValidators = true
	a, b := startValidator(t, cfg, nil), startValidator(t, cfg, nil)
	f := startNode(t, cfg)
	f.r.SetValidatorIDs(nil, []peer.ID{a.h.ID(), b.h.ID()})
	connect(t, f.h, a.h)
	connect(t, f.h, b.h)
	var first peer.ID
	eventually(t, 5*time.Second, "f's parent", func() bool { first = f.r.Parent(); return first != "" })
	other := a.h.ID()
	if first == other {
		other = b.h.ID()
	}
	forwards := func(ids ...peer.ID) func(peer.ID) bool {
		return func(p peer.ID) bool { return slices.Contains(ids, p) }
	}
	for _, tt := range []struct {
		name       string
		forwarding []peer.ID
		passOver   bool
		want       peer.ID
	}{
		{"nobody forwards: the parent stays", nil, false, first},
		{"the parent forwards: it stays", []peer.ID{first, other}, false, first},
		{"another validator passed over forwards: the parent stays", []peer.ID{other}, true, first},
		{"only another validator forwards: it becomes the parent", []peer.ID{other}, false, other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.passOver {
				f.r.lazy.passOver(other, time.Now().Add(time.Hour), wire.MessageID{1})
				defer f.r.lazy.restore(other, wire.MessageID{1})
			}
			if got := f.r.lazy.preferForwarding(f.h.ID(), f.h.Network(), first, forwards(tt.forwarding...)); got != tt.want {
				t.Fatalf("block parent %s, want %s", got, tt.want)
			}
			if got := f.r.Parent(); got != tt.want {
				t.Fatalf("parent %s afterwards, want %s", got, tt.want)
			}
		})
	}
}

// A parent passed over for one block is a parent again only by proving
// that block: a receipt of any other message it once started is not
// enough.
func TestOnlyAProofOfTheSameBlockRestoresAParent(t *testing.T) {
	var l lazySet
	v := peer.ID("validator")
	l.replace("", nil, []peer.ID{v})
	block, other := wire.MessageID{1}, wire.MessageID{2}
	l.passOver(v, time.Now().Add(time.Hour), block)
	if l.restore(v, other) || !l.isPassedOver(v) {
		t.Fatal("a proof of another message restored the parent")
	}
	if !l.restore(v, block) || l.isPassedOver(v) {
		t.Fatal("a proof of the block did not restore the parent")
	}
}

// Attack: a full node hands a validator blocks asking for proofs and
// leaves, with an address that accepts TCP and never answers. The
// validator sends a proof only over the connection its block came on:
// it never dials the submitter, so the proofs queued behind that one
// (here an honest full node's) are not held up for a dial.
func TestAProofToASubmitterThatLeftIsDroppedWithoutADial(t *testing.T) {
	cfg := testConfig("proof")
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.SubmitFallback, cfg.Gossip.LargeSubmitFallback = time.Minute, time.Minute
	v := startValidator(t, cfg, nil)
	f := startNode(t, cfg)
	connect(t, f.h, v.h)

	tarpit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := tarpit.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	t.Cleanup(func() { _ = tarpit.Close() })
	ghost := keyID(t, nil)
	addr, err := manet.FromNetAddr(tarpit.Addr())
	if err != nil {
		t.Fatal(err)
	}
	v.h.Peerstore().AddAddr(ghost, addr, time.Hour)

	xKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	x := keyID(t, xKey)
	ring := []peer.ID{v.h.ID(), x}
	p := receiptProof(t, xKey, []byte("a set f does not know"), ring, x, envelope(t, f, "block"), 2)
	v.r.SendProof(ghost, *p)
	v.r.SendProof(f.h.ID(), *p)
	// f knows no set, so the proof only bumps a counter when it arrives.
	eventually(t, 5*time.Second, "the honest full node's proof", func() bool { return f.r.Stats().ProofsUnexpected == 1 })
	if s := v.r.Stats(); s.ProofsDropped != 1 || s.ProofsSent != 1 {
		t.Fatalf("proofs dropped %d, sent %d; want 1, 1", s.ProofsDropped, s.ProofsSent)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the validator dialled the submitter that left %d times", n)
	}
}

// Attack: a full node stays connected and stops reading the stream its
// proofs come on, until every further write to it blocks. Its proofs wait
// in a queue of its own, sent by a goroutine of its own, so a proof owed
// to an honest full node goes out at once, not behind them.
func TestAFullNodeThatReadsNoProofsHoldsUpOnlyItsOwn(t *testing.T) {
	cfg := testConfig("proof")
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.SubmitProofWait = 10 * time.Second
	cfg.Gossip.MaxProofQueue, cfg.Gossip.MaxProofQueuePerPeer = 8192, 4096 // room to fill its stream
	v := startValidator(t, cfg, nil)
	f := startNode(t, cfg)
	connect(t, f.h, v.h)
	stalled := newHost(t)
	stalled.SetStreamHandler(UnicastProtocolID(cfg.NetworkID), func(network.Stream) {}) // open, never read
	connect(t, stalled, v.h)
	eventually(t, 5*time.Second, "identify listing the stalled node's protocol", func() bool {
		ok, err := v.h.Peerstore().SupportsProtocols(stalled.ID(), UnicastProtocolID(cfg.NetworkID))
		return err == nil && len(ok) > 0
	})

	xKey, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	x := keyID(t, xKey)
	p := receiptProof(t, xKey, []byte("a set f does not know"), []peer.ID{v.h.ID(), x}, x, envelope(t, f, "block"), 2)
	// About 300 bytes each: more than a stream's window.
	for range 2000 {
		v.r.SendProof(stalled.ID(), *p)
	}
	v.r.SendProof(f.h.ID(), *p)
	eventually(t, 5*time.Second, "the honest full node's proof", func() bool { return f.r.Stats().ProofsUnexpected == 1 })
}

// Attack on real hosts: IHAVEs for our topic, on a real gossipsub stream,
// from a peer outside the validator set show nothing of its forwarding,
// however many it sends, so they cannot make it a block's parent; the
// same IHAVE from a validator does. Each IHAVE is known to have been
// heard once pubsub answers it with an IWANT (the IDs are unknown).
func TestIHavesFromOutsideTheSetShowNoForwarding(t *testing.T) {
	const net = "ihave-attack"
	cfg := testConfig(net)
	cfg.Gossip.LazyAmongValidators = true
	f := startNode(t, cfg)
	hostile, validator := rawGossipPeer(t), rawGossipPeer(t)
	f.r.SetValidatorIDs(nil, []peer.ID{validator.h.ID()})
	start := time.Now()
	topic := TopicName(net)
	for i, p := range []struct {
		*rawPeer
		want bool
	}{{hostile, false}, {validator, true}} {
		connect(t, p.h, f.h)
		select { // pubsub answers a peer once it has greeted it
		case <-p.greeted:
		case <-time.After(10 * time.Second):
			t.Fatalf("pubsub never greeted %s", p.h.ID())
		}
		for k := range 3 {
			id := fmt.Sprintf("%031d%d", i, k) // 32 bytes: our message-ID length
			ihave := &pb.ControlMessage{Ihave: []*pb.ControlIHave{{TopicID: &topic, MessageIDs: []string{id}}}}
			sendRPC(t, p.h, f.h.ID(), &pb.RPC{Control: ihave})
			select {
			case iw := <-p.iwants:
				if !slices.Contains(iw.GetMessageIDs(), id) {
					t.Fatalf("pubsub asked %v for %q's IHAVE of %q", iw.GetMessageIDs(), p.h.ID(), id)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("pubsub never answered %s's IHAVE %d", p.h.ID(), k)
			}
		}
		if got := f.r.have.forwardedSince(p.h.ID(), start); got != p.want {
			t.Fatalf("after its IHAVEs, %s forwards = %v, want %v", p.h.ID(), got, p.want)
		}
	}
}

// rawPeer is a host that speaks gossipsub's protocols by hand: it notes
// the first RPC it reads (pubsub's greeting) and hands on the IWANTs.
type rawPeer struct {
	h       host.Host
	greeted chan struct{}
	iwants  chan *pb.ControlIWant
}

func rawGossipPeer(t *testing.T) *rawPeer {
	t.Helper()
	p := &rawPeer{h: newHost(t), greeted: make(chan struct{}), iwants: make(chan *pb.ControlIWant, 64)}
	var greet sync.Once
	read := func(s network.Stream) {
		defer s.Reset()
		r := bufio.NewReader(s)
		for {
			n, err := binary.ReadUvarint(r)
			if err != nil {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return
			}
			var rpc pb.RPC
			if proto.Unmarshal(b, &rpc) != nil {
				return
			}
			greet.Do(func() { close(p.greeted) })
			for _, iw := range rpc.GetControl().GetIwant() {
				select {
				case p.iwants <- iw:
				default:
				}
			}
		}
	}
	for _, id := range []protocol.ID{pubsub.GossipSubID_v12, pubsub.GossipSubID_v11} {
		p.h.SetStreamHandler(id, read)
	}
	return p
}

// sendRPC writes rpc to peer to on a new gossipsub stream from h.
func sendRPC(t *testing.T, h host.Host, to peer.ID, rpc *pb.RPC) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, to, pubsub.GossipSubID_v12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(rpcFrame(t, rpc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
}
