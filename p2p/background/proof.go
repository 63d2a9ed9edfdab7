package background

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Proofs of a started block (GossipParams.SubmitProofWait). A full node
// hands its block whole to one parent validator, so a parent that takes
// it and starts nothing (silent, or hostile) used to hold it up for the
// whole LargeSubmitFallback, and then gossip alone carried it. Now the
// parent proves that it started the block on RainTree: it relays to the
// full node the signed receipt one of its own targets put in its ACK
// (raintree.Router.RelayProving), as a proof frame on background unicast.
// The full node accepts a receipt only for the block it submitted to that
// parent, on its own validator set, for one of the root's two largest
// frames (wire.MinProofSpan) headed by a validator other than the
// parent, signed with that validator's key. With none in time it passes
// the parent over and hands the block to its next parent. Only parents
// that list SubmitProofProtocolID are asked. A parent and one of its
// targets that collude can forge the proof, as for the validators' own
// forwarding checks (docs/SECURITY.md).

// SendProof queues p for the full node to, which submitted the block p is
// about. It never blocks: beyond GossipParams.MaxProofQueuePerPeer proofs
// waiting for to it drops p, and beyond MaxProofQueue in all the oldest
// proof of the full node with the most waiting (or p), counted in
// Stats.ProofsDropped. Each full node's proofs are sent in order by a
// goroutine of its own, so one that reads none holds up only its own.
func (r *Router) SendProof(to peer.ID, p wire.Proof) {
	ok, evicted := r.proofs.Push(to, p, func() {
		r.wg.Go(func() { r.proofs.Drain(to, func(p wire.Proof) { r.sendProof(to, p) }) })
	})
	if !ok {
		r.c.proofsDropped.Add(1)
	}
	r.c.proofsDropped.Add(uint64(evicted))
}

// sendProof sends one queued proof over the connection its block came
// on, never dialling: a submitter that left, or left an address that
// never answers, would otherwise tie a goroutine up for a dial. A send
// takes at most SubmitProofWait (its default when proofs are off here),
// the least a full node waits.
func (r *Router) sendProof(to peer.ID, p wire.Proof) {
	frame, err := wire.EncodeProof(p)
	if err == nil {
		wait := cmp.Or(r.cfg.Gossip.SubmitProofWait, DefaultSubmitProofWait)
		ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "proof of a started block"), wait)
		err = r.uc.Send(ctx, to, frame)
		cancel()
	}
	if err != nil {
		r.c.proofsDropped.Add(1)
		r.log.Debug("sending a proof of a started block", "to", to, "err", err)
		return
	}
	r.c.proofsSent.Add(1)
}

// onProof takes a parent's proof that it started our block. A proof on
// another validator set than ours proves nothing, since anyone can name a
// set we do not know: the block's wait goes on, and with no proof on our
// set by then it is handed on. But the set may just have changed on
// either side, so it is not held against the sender: it is passed over
// for that block only, not for UnprovenParentTTL. A proof that does not
// verify on our set is the sender's misbehaviour. A valid proof for
// no block awaiting one from that peer is counted and ignored, but a
// parent passed over for that very block is a parent again.
func (r *Router) onProof(from peer.ID, p wire.Proof) {
	ring, ours := r.lazy.ringOf(p.SetHash)
	if !ours {
		r.later.provedOnOtherSet(p.Receipt.ID, from)
		r.c.proofsUnexpected.Add(1)
		return
	}
	if err := checkProof(r.cfg.NetworkID, ring, from, p); err != nil {
		r.c.proofsRejected.Add(1)
		r.log.Debug("rejecting a proof of a started block", "from", from, "err", err)
		r.uc.Penalize(from)
		return
	}
	if !r.later.proven(p.Receipt.ID, from) {
		r.lazy.restore(from, p.Receipt.ID)
		r.c.proofsUnexpected.Add(1)
		return
	}
	if r.have != nil {
		r.have.forwarded(from) // our next block may go to it first
	}
	r.c.proofsAccepted.Add(1)
}

// aboveGossipThreshold reports whether pubsub still takes gossip from p:
// its last score, if any, is at or above the gossip threshold.
func (r *Router) aboveGossipThreshold(p peer.ID) bool {
	sc, ok := r.Score(p)
	return !ok || sc >= r.cfg.Scoring.GossipThreshold
}

// checkProof verifies, on ring (the set the proof names, in ring order),
// that p's receipt is signed by the validator heading the frame it names,
// that the frame was one of the root's largest (wire.MinProofSpan), and
// that its head is not the parent (from).
func checkProof(networkID string, ring []peer.ID, from peer.ID, p wire.Proof) error {
	rc := p.Receipt
	if int(rc.SpanStart) >= len(ring) {
		return fmt.Errorf("receipt names validator %d, not in the set", rc.SpanStart)
	}
	head := ring[rc.SpanStart]
	switch least := wire.MinProofSpan(len(ring)); {
	case head == from:
		return fmt.Errorf("receipt signed by the parent itself")
	case int(rc.SpanLen) < least:
		return fmt.Errorf("receipt for a frame of %d validators, fewer than %d", rc.SpanLen, least)
	}
	pub, err := head.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("key of %s: %w", head, err)
	}
	return wire.VerifyReceipt(pub, networkID, rc, p.Sig)
}

// forwardingWindow is how recently a validator must have shown it
// forwards (a copy, an IHAVE, a proof) to be preferred as a block's
// parent.
const forwardingWindow = time.Minute

// blockParent is the parent a block goes to: Parent, unless it has not
// shown lately that it forwards (sent us a copy of a message on gossip,
// as validators do when they republish what RainTree brought them,
// advertised messages, or proved it started one of our blocks; a
// validator that sits on everything does none of these) and another
// connected validator has. Forwarding only makes a validator preferred, never suppresses
// anything; one that forwards on gossip and sits on blocks is caught by
// the proof.
func (r *Router) blockParent() peer.ID {
	p := r.Parent()
	if p == "" || r.have == nil {
		return p
	}
	since := time.Now().Add(-forwardingWindow)
	return r.lazy.preferForwarding(r.host.ID(), r.host.Network(), p, func(id peer.ID) bool {
		// Only a validator that can be held to a proof is preferred, and
		// not one pubsub ignores: an IHAVE is noted before pubsub's
		// gossip threshold drops it.
		return r.offersProofs(id) && r.have.forwardedSince(id, since) && r.aboveGossipThreshold(id)
	})
}

// offersProofs reports whether validator id said (identify) that it
// answers want_proof.
func (r *Router) offersProofs(id peer.ID) bool {
	return r.supports(SubmitProofProtocolID(r.cfg.NetworkID))(id)
}

// supports is a check that a peer lists proto in identify.
func (r *Router) supports(proto protocol.ID) func(peer.ID) bool {
	return func(p peer.ID) bool {
		ok, err := r.host.Peerstore().SupportsProtocols(p, proto)
		return err == nil && len(ok) > 0
	}
}

// wantsProof reports whether a whole-ring submission of size bytes to
// parent asks it for a proof and waits for it: proofs are on, the set is
// large enough, and the parent said (identify) that it answers.
func (r *Router) wantsProof(parent peer.ID, size int) bool {
	return r.cfg.Gossip.ProofWait(size) > 0 && wire.MinProofSpan(r.lazy.ringLen()) > 0 && r.offersProofs(parent)
}

// advertiseProofs lists SubmitProofProtocolID on a node of a lazy network
// that can prove a started block (Config.ProvesSubmissions), which, when
// it is a validator, answers want_proof. A stream opened on it is reset
// at once.
func (r *Router) advertiseProofs() {
	if r.cfg.lazyNetwork() && r.cfg.ProvesSubmissions {
		r.host.SetStreamHandler(SubmitProofProtocolID(r.cfg.NetworkID), func(s network.Stream) { _ = s.Reset() })
	}
}

// ProofWait is how long a full node's whole-ring submission of size
// bytes waits for its parent's proof, or zero when it needs none (small,
// or proofs off): SubmitProofWait per MiB, in proportion, and at least
// SubmitProofWait. (A block of a MiB of payload is a little more on the
// wire; rounding up would double its wait.)
func (g GossipParams) ProofWait(size int) time.Duration {
	if !g.large(size) || g.SubmitProofWait <= 0 {
		return 0
	}
	const mib = 1 << 20
	return time.Duration(float64(g.SubmitProofWait) * max(1, float64(size)/mib))
}

// resubmit hands a block whose parent gave no proof in time to the next
// parent, passing the silent one over for UnprovenParentTTL; after
// MaxSubmitAttempts parents, or with none left, it publishes the block.
// It runs on laterLoop and sends on a goroutine of its own.
func (r *Router) resubmit(p pending) {
	r.c.submitUnproven.Add(1)
	g := r.cfg.Gossip
	ttl := g.UnprovenParentTTL
	if p.otherSet { // maybe a set change, not a parent that sits on blocks
		ttl = min(ttl, g.submitFallback(len(p.msg.Raw)))
	}
	r.lazy.passOver(p.parent, time.Now().Add(ttl), p.msg.ID)
	next := r.blockParent()
	if next == "" || p.attempt+1 >= g.MaxSubmitAttempts {
		r.publishFallback(p)
		return
	}
	r.wg.Go(func() { r.handTo(next, p.msg, p.attempt+1, r.wantsProof(next, len(p.msg.Raw))) })
}

// handTo hands our block msg to parent, the attempt-th parent to get it,
// asking for a proof with prove. It is queued first, due at the
// fallback, so that gossip bringing it back during the send is not
// missed; once sent, it is due when the parent's proof is, and at once if
// the send failed (the next parent).
func (r *Router) handTo(parent peer.ID, msg *wire.Message, attempt int, prove bool) {
	if !r.awaitBeforeSending(msg, parent, attempt) {
		r.publishFallback(pending{msg: msg}) // parent never had it
		return
	}
	due := time.Now()
	if err := r.sendSubmission(r.ctx, parent, msg, wire.Handover{WantProof: prove}); err != nil {
		r.c.submitErrors.Add(1)
		r.log.Debug("handing a block to the next parent failed", "parent", parent, "err", err)
	} else {
		r.c.resubmitted.Add(1)
		if !prove { // it waits for the fallback, like any submission
			r.later.stopAwaiting(msg.ID, parent, false)
			return
		}
		due = time.Now().Add(r.cfg.Gossip.ProofWait(len(msg.Raw)))
	}
	r.later.awaitProof(msg.ID, parent, due)
}
