package background

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Delayed forwarding on full nodes of a lazy network.
//
// Under lazy gossip nearly every node receives a broadcast within one or
// two RainTree hops of the others: validators from RainTree, full nodes
// from validators. Gossipsub forwards a message to every mesh peer that
// has not yet told it, with IDONTWANT, that it has the message, and a
// mesh peer that received its own copy at about the same time has not had
// the time to: each mesh link would carry a copy in both directions.
//
// A full node therefore hands a valid message to its application at once
// but, when a validator sent it, holds it before pubsub may forward it:
// until every validator in its mesh has said it has the message
// (release.go), or for as long as RainTree still takes to reach its last
// validator after the one that sent it, a link for each hop the plan of
// the broadcast has left (Config.HopsAfter) and a round trip more, or,
// when the plan is unknown, for the forward delay, two round trips to them
// (rtt.go). The IDONTWANTs its mesh peers sent on receiving their own
// copies, validators' included, arrive in the meantime, and pubsub skips
// those peers. A peer that did not get the message (a validator below a
// silent one in RainTree, a full node whose validators are silent) still
// gets it, a forward delay later. A small message from another full node
// is forwarded at once: it is already a forward delay behind RainTree (or
// never was on it, as a stock node's broadcast), so the validators that
// have it said so long ago and those that lack it need it now. IDONTWANT
// covers messages of at least 1 KiB (pubsub's threshold); smaller ones are
// cheap to duplicate. Large messages (LargeBytes) wait LargeForwardDelay
// from anyone: RainTree takes seconds to spread them.
//
// The delay holds a validation slot of pubsub's per message: their number
// is bounded by ValidateQueueSize, and a message beyond it is dropped by
// pubsub and counted (Stats.DroppedValidation). Their bytes are bounded by
// MaxHeldBytes: a message beyond it is forwarded at once, and counted
// (Stats.HeldFull), so a flood of large messages cannot pin memory for the
// whole delay.

// handed marks a message the validator already gave to the handler, so
// the delivery loop does not give it again.
type handed struct{ msg *wire.Message }

// validator is the topic validator pubsub runs: inline on its validation
// workers (no goroutine per message, so a burst is bounded only by
// ValidateQueueSize), except on a full node of a lazy network with
// ForwardDelay, where each message waits in its own goroutine.
func (r *Router) validator() (pubsub.ValidatorEx, pubsub.ValidatorOpt) {
	if !r.delaysForwarding() {
		return r.validate, pubsub.WithValidatorInline(true)
	}
	return r.validateThenWait, pubsub.WithValidatorConcurrency(r.cfg.ValidateQueueSize)
}

func (r *Router) delaysForwarding() bool {
	return r.cfg.lazyNetwork() && !r.cfg.RainTreeValidator && r.cfg.Gossip.ForwardDelay > 0 && !r.cfg.Silent
}

// validateThenWait validates, hands an accepted message from a peer to the
// handler, and returns when pubsub may forward it (hold).
func (r *Router) validateThenWait(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	res := r.validate(ctx, from, msg)
	if res != pubsub.ValidationAccept || msg.ReceivedFrom == r.host.ID() {
		return res
	}
	m := msg.ValidatorData.(*wire.Message)
	if m.Origin == r.self {
		r.later.cameBack(m.ID)
	}
	r.deliver(msg.ReceivedFrom, m, ViaGossip, wire.Handover{})
	msg.ValidatorData = handed{m}
	r.hold(ctx, msg.ReceivedFrom, m)
	return pubsub.ValidationAccept
}

// hold waits as long as message m from peer from must wait before pubsub
// forwards it: not at all for a small one from a full node, nor when
// MaxHeldBytes are already held (counted); otherwise until every validator
// in the mesh has said it has it (release.go), or for the RainTree hops it
// has left (treeDelay) or, when those are unknown, its forward delay at
// most.
func (r *Router) hold(ctx context.Context, from peer.ID, m *wire.Message) {
	size := len(m.Raw)
	if !r.cfg.Gossip.large(size) && !r.lazy.contains(from) {
		return
	}
	if r.held.Add(int64(size)) > int64(r.cfg.Gossip.MaxHeldBytes) {
		r.held.Add(-int64(size))
		r.c.heldFull.Add(1)
		return
	}
	defer r.held.Add(-int64(size))
	r.c.held.Add(1)
	start, rtt := time.Now(), r.meshRTT()
	d := r.cfg.Gossip.forwardDelay(size, rtt)
	if r.cfg.HopsAfter != nil && !r.cfg.Gossip.large(size) {
		if hops, ok := r.cfg.HopsAfter(m, from); ok {
			d = r.cfg.Gossip.treeDelay(hops, rtt)
		}
	}
	rep := r.repairsFor(m, from, rtt, start, start.Add(d))
	if r.have.wait(ctx, r.gossipID(m), from, d, r.cfg.Gossip.releaseGrace(size, rtt), rep) {
		r.c.releasedEarly.Add(1)
	}
}

// forwardDelay is how long a full node holds a message of size bytes at
// most: LargeForwardDelay for a large one, otherwise two round trips, rtt
// being the median round trip to its mesh's validators (rtt.go), between
// ForwardDelay and MaxForwardDelay.
func (g GossipParams) forwardDelay(size int, rtt time.Duration) time.Duration {
	if g.large(size) {
		return g.LargeForwardDelay
	}
	return min(max(2*rtt, g.ForwardDelay), g.MaxForwardDelay)
}

// treeDelay is how long a full node holds a small message from a validator
// that RainTree reaches hops hops before its last validator: a link for
// each of those hops and a round trip more, for what queues and
// processing add (a loaded node's hop takes several links), (hops+2)/2
// round trips, between ForwardDelay and the forward delay. A validator
// that gets it later still is below a silent one, and the sooner it has
// the copy the better. The copy from the validator and the IDONTWANTs of
// the others cross one link each, so that link is not waited for.
func (g GossipParams) treeDelay(hops int, rtt time.Duration) time.Duration {
	return min(max(time.Duration(hops+2)*rtt/2, g.ForwardDelay), g.forwardDelay(0, rtt))
}

// releaseGrace is how long a hold lasts after the last validator in the
// mesh said it has the message: about one link, half a round trip rtt
// (and at least a third of ForwardDelay), for the full nodes in the mesh
// that their own validators fed at about the same moment to say so too; a
// third of LargeForwardDelay for a large message, which takes a link long.
func (g GossipParams) releaseGrace(size int, rtt time.Duration) time.Duration {
	if g.large(size) {
		return g.LargeForwardDelay / 3
	}
	return max(g.ForwardDelay/3, rtt/2)
}

// currentForwardDelay is the hold of a small message now, or 0 on a node
// that does not hold messages.
func (r *Router) currentForwardDelay() time.Duration {
	if r.have == nil {
		return 0
	}
	return r.cfg.Gossip.forwardDelay(0, r.meshRTT())
}

// large reports whether a message of size bytes gets the large-message
// delays (LargeBytes).
func (g GossipParams) large(size int) bool { return size >= g.LargeBytes }
