package background

import (
	"math"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/unicast"
)

// Rejections counts messages refused because of what they contained, by
// reason.
type Rejections struct {
	Malformed       uint64 // not a BackgroundMessage holding an Envelope
	TooLarge        uint64 // envelope over MaxMessageSize
	Empty           uint64 // no bytes at all
	InvalidEnvelope uint64 // decodes, but fails Envelope.Check (no content, zero nonce)
	// Signature: the envelope is unsigned or its signature fails, it is
	// misdirected (a unicast envelope for another node, or on gossip), or
	// a gossip message carries pubsub author fields or a pubsub signature
	// (StrictNoSign).
	Signature uint64
}

// Stats is a snapshot of a Router's counters. Fields are read one by one,
// so a snapshot taken under load is not atomic as a whole.
type Stats struct {
	// Published counts successful Broadcasts; PublishErrors failed ones,
	// ErrNoPeers included.
	Published, PublishErrors uint64
	// Republished counts messages RainTree delivered to a lazy validator
	// that it handed to gossip; RepublishErrors those gossip refused.
	Republished, RepublishErrors uint64
	// Submitted counts a lazy full node's broadcasts handed to its parent
	// validator (SubmitErrors: a send failed; a share's then went to the
	// parent, the parent's was published instead); SubmitReturned those
	// that came back through gossip in time, SubmitFallbacks those it then
	// published itself, SubmitRecipientLeft those due as soon as a
	// connection to the parent of a whole-ring submission closed, before
	// the fallback (or a block's proof) ran out. SharesSent
	// counts the shares of broadcasts handed over in parts
	// (SubmitInShares) that went straight to their heads.
	Submitted, SubmitErrors, SubmitReturned, SubmitFallbacks, SharesSent uint64
	SubmitRecipientLeft                                                  uint64
	// SubmitUnproven counts a full node's blocks whose parent proved
	// nothing in time (GossipParams.SubmitProofWait), Resubmitted those
	// then handed to the next parent (the others were published).
	// ProofsAccepted counts the proofs it took, ProofsRejected those that
	// did not verify (the sender is penalised), ProofsUnexpected valid
	// ones for no block awaiting one from their sender. On a validator,
	// ProofsSent counts the proofs it sent full nodes, ProofsDropped those
	// it could not (queue full, or the send failed).
	SubmitUnproven, Resubmitted                      uint64
	ProofsAccepted, ProofsRejected, ProofsUnexpected uint64
	ProofsSent, ProofsDropped                        uint64
	// Submissions counts broadcasts full nodes handed to this node.
	Submissions uint64
	// PendingFull counts messages published at once because the queue of
	// later publications (GossipParams.MaxPending) was full.
	PendingFull uint64
	// Held counts messages a full node held before letting pubsub forward
	// them (forward.go); HeldFull those it forwarded without its forward
	// delay because the messages already held filled MaxHeldBytes.
	Held, HeldFull uint64
	// ReleasedEarly counts held messages a full node let pubsub forward
	// before their forward delay, every validator in its mesh having said
	// it has them (release.go); SignalsFull the message IDs it forgot to
	// stay within MaxHaveSignals.
	ReleasedEarly, SignalsFull uint64
	// ForwardDelay is the longest a full node of a lazy network now holds
	// a small message: between GossipParams.ForwardDelay and
	// MaxForwardDelay, after the round trips to its validators (rtt.go).
	// 0 on a node that does not hold messages. PingErrors counts the pings
	// that measure those round trips and failed.
	ForwardDelay time.Duration
	PingErrors   uint64
	// DeliveredGossip and DeliveredUnicast count envelopes handed to the
	// handler, by path.
	DeliveredGossip, DeliveredUnicast uint64
	// Duplicates counts gossip copies of messages already seen (the cost
	// of mesh redundancy).
	Duplicates uint64
	// SilentWithheld counts messages a Silent node delivered but did not
	// forward.
	SilentWithheld uint64
	// GossipStale counts valid gossip created outside the replay window,
	// ignored (neither delivered nor forwarded, no penalty).
	GossipStale uint64
	// GossipRejected and UnicastRejected count refused inbound messages.
	GossipRejected, UnicastRejected Rejections
	// DroppedSubscriptionFull counts valid messages pubsub dropped because
	// the subscription buffer was full (the handler is too slow).
	DroppedSubscriptionFull uint64
	// DroppedValidation counts messages dropped before validation because
	// the validation queue was full or validation was throttled.
	DroppedValidation uint64
	// ThrottledRPCs counts RPCs pubsub's peer gater (ScoreParams.PeerGater)
	// throttled: their messages were dropped and only their control part
	// read. Pubsub reports them whether or not they carried messages.
	ThrottledRPCs uint64
	// DroppedOutbound counts RPCs pubsub dropped because a peer's outbound
	// queue was full.
	DroppedOutbound uint64
	// DroppedRateLimited counts direct sends dropped because their sender
	// exceeded DirectRate.
	DroppedRateLimited uint64
	// RateLimitForgotten counts peers whose direct-send bucket was
	// forgotten before it refilled, to stay within MaxRateLimitedPeers.
	RateLimitForgotten uint64
	// CatchUpForgotten counts recent messages left out of the IHAVE a
	// newly grafted mesh peer gets, beyond pubsub's MaxIHaveLength.
	CatchUpForgotten uint64
	// LargeWritesWaited counts gossip writes of a large message that
	// waited for another's turn (GossipParams.LargeWriteHold),
	// LargeWritesOvertook those of them that went beside the others after
	// waiting the hold, CopiesDeclined the copies left out because their
	// peer had said (IDONTWANT) it had the message, and UnwantedForgotten
	// the IDONTWANTs forgotten past UnwantedMemory.
	LargeWritesWaited, LargeWritesOvertook, CopiesDeclined, UnwantedForgotten uint64
	// IWantsHeld counts the message IDs this node left out of its IWANTs
	// because a large frame was arriving (GossipParams.AskHold).
	IWantsHeld uint64
	// BusyNoticesSent counts the busy notices this full node sent its mesh
	// peers (GossipParams.BusyHold), BusyNoticesDropped those it did not
	// send (a send failed, or rounds were already waiting),
	// BusyNoticesHeard the notices it heard, and LargeWritesHeldBusy its
	// large gossip writes held for a busy peer.
	BusyNoticesSent, BusyNoticesDropped, BusyNoticesHeard, LargeWritesHeldBusy uint64
	// AsksSent counts this node's asks to send a large gossip write
	// (GossipParams.ClearWait), AsksCleared those the peer cleared,
	// AsksRefused those it answered with a busy notice, and
	// AsksUnanswered those not answered in time (or not sent), and
	// AsksMuted the peers then not asked for a minute (their stream
	// failed, they let half of ClearWait pass after an ask was written,
	// or two asks to them could not be written within a minute).
	AsksSent, AsksCleared, AsksRefused, AsksUnanswered, AsksMuted uint64
	// ClearancesGiven counts the asks this node answered with a
	// clearance, ClearancesRefused those it answered with a busy notice,
	// and AnswersDropped the answers it did not send (one was already on
	// its way to that peer, or the send failed).
	ClearancesGiven, ClearancesRefused, AnswersDropped uint64
	// RepairsSent counts the repairs this full node sent validators of
	// its mesh that had not said they have a message RainTree should
	// have brought them (GossipParams.RepairSlack), RepairErrors those
	// whose send failed, RepairsSkipped those not sent (over a
	// validator's budget, or too many under way); RepairsTaken counts the repairs this validator
	// took from its mesh, RepairsRefused those it dropped (not from a
	// peer of its mesh, or not a validator of a lazy network).
	RepairsSent, RepairErrors, RepairsSkipped, RepairsTaken, RepairsRefused uint64
	// Graylisted is how many peers were below the graylist threshold at
	// the last score inspection, LowestScore the lowest score then.
	Graylisted  uint64
	LowestScore float64
	// ScoreDisconnects counts connections closed to graylisted peers.
	ScoreDisconnects uint64
	// BootstrapDialErrors counts failed dials to bootstrap peers (each is
	// retried with backoff), DiscoveryErrors failed DHT discovery rounds,
	// and DiscoveredDialErrors failed dials to peers discovery found.
	BootstrapDialErrors, DiscoveryErrors, DiscoveredDialErrors uint64
	// Unicast is the embedded unicast router's own counters.
	Unicast unicast.Stats
}

type rejectionCounters struct {
	malformed, tooLarge, empty, invalidEnvelope, signature atomic.Uint64
}

func (c *rejectionCounters) snapshot() Rejections {
	return Rejections{
		Malformed:       c.malformed.Load(),
		TooLarge:        c.tooLarge.Load(),
		Empty:           c.empty.Load(),
		InvalidEnvelope: c.invalidEnvelope.Load(),
		Signature:       c.signature.Load(),
	}
}

type counters struct {
	published, publishErrors          atomic.Uint64
	republished, republishErrors      atomic.Uint64
	submitted, submitErrors           atomic.Uint64
	sharesSent                        atomic.Uint64
	submitReturned, submitFallbacks   atomic.Uint64
	submitRecipientLeft               atomic.Uint64
	submitUnproven, resubmitted       atomic.Uint64
	proofsAccepted, proofsRejected    atomic.Uint64
	proofsUnexpected                  atomic.Uint64
	proofsSent, proofsDropped         atomic.Uint64
	submissions, laterFull, heldFull  atomic.Uint64
	repairsSent, repairErrors         atomic.Uint64
	repairsSkipped                    atomic.Uint64
	repairsTaken, repairsRefused      atomic.Uint64
	held                              atomic.Uint64
	releasedEarly, signalsFull        atomic.Uint64
	pingErrors                        atomic.Uint64
	deliveredGossip, deliveredUnicast atomic.Uint64
	duplicates, silentWithheld        atomic.Uint64
	gossipStale                       atomic.Uint64
	gossipRejected, unicastRejected   rejectionCounters
	droppedSubscriptionFull           atomic.Uint64
	droppedValidation                 atomic.Uint64
	throttledRPCs                     atomic.Uint64
	droppedOutbound                   atomic.Uint64
	droppedRateLimited                atomic.Uint64
	graylisted, lowestScore           atomic.Uint64 // lowestScore holds float64 bits
	scoreDisconnects                  atomic.Uint64
	bootstrapDialErrors               atomic.Uint64
	discoveryErrors                   atomic.Uint64
	discoveredDialErrors              atomic.Uint64
	catchUpForgotten                  atomic.Uint64
}

// Stats returns the current counters.
func (r *Router) Stats() Stats {
	s := Stats{
		CatchUpForgotten:        r.c.catchUpForgotten.Load(),
		Published:               r.c.published.Load(),
		PublishErrors:           r.c.publishErrors.Load(),
		Republished:             r.c.republished.Load(),
		RepublishErrors:         r.c.republishErrors.Load(),
		Submitted:               r.c.submitted.Load(),
		SubmitErrors:            r.c.submitErrors.Load(),
		SharesSent:              r.c.sharesSent.Load(),
		SubmitReturned:          r.c.submitReturned.Load(),
		SubmitFallbacks:         r.c.submitFallbacks.Load(),
		SubmitRecipientLeft:     r.c.submitRecipientLeft.Load(),
		SubmitUnproven:          r.c.submitUnproven.Load(),
		Resubmitted:             r.c.resubmitted.Load(),
		ProofsAccepted:          r.c.proofsAccepted.Load(),
		ProofsRejected:          r.c.proofsRejected.Load(),
		ProofsUnexpected:        r.c.proofsUnexpected.Load(),
		ProofsSent:              r.c.proofsSent.Load(),
		ProofsDropped:           r.c.proofsDropped.Load(),
		Submissions:             r.c.submissions.Load(),
		RepairsSent:             r.c.repairsSent.Load(),
		RepairErrors:            r.c.repairErrors.Load(),
		RepairsSkipped:          r.c.repairsSkipped.Load(),
		RepairsTaken:            r.c.repairsTaken.Load(),
		RepairsRefused:          r.c.repairsRefused.Load(),
		PendingFull:             r.c.laterFull.Load(),
		Held:                    r.c.held.Load(),
		HeldFull:                r.c.heldFull.Load(),
		ReleasedEarly:           r.c.releasedEarly.Load(),
		SignalsFull:             r.c.signalsFull.Load(),
		ForwardDelay:            r.currentForwardDelay(),
		PingErrors:              r.c.pingErrors.Load(),
		DeliveredGossip:         r.c.deliveredGossip.Load(),
		DeliveredUnicast:        r.c.deliveredUnicast.Load(),
		Duplicates:              r.c.duplicates.Load(),
		SilentWithheld:          r.c.silentWithheld.Load(),
		GossipStale:             r.c.gossipStale.Load(),
		GossipRejected:          r.c.gossipRejected.snapshot(),
		UnicastRejected:         r.c.unicastRejected.snapshot(),
		DroppedSubscriptionFull: r.c.droppedSubscriptionFull.Load(),
		ThrottledRPCs:           r.c.throttledRPCs.Load(),
		DroppedValidation:       r.c.droppedValidation.Load(),
		DroppedOutbound:         r.c.droppedOutbound.Load(),
		RateLimitForgotten:      r.direct.forgotten.Load(),
		DroppedRateLimited:      r.c.droppedRateLimited.Load(),
		Graylisted:              r.c.graylisted.Load(),
		LowestScore:             math.Float64frombits(r.c.lowestScore.Load()),
		BootstrapDialErrors:     r.c.bootstrapDialErrors.Load(),
		DiscoveryErrors:         r.c.discoveryErrors.Load(),
		DiscoveredDialErrors:    r.c.discoveredDialErrors.Load(),
		ScoreDisconnects:        r.c.scoreDisconnects.Load(),
		Unicast:                 r.uc.Stats(),
	}
	r.up.Load().fill(&s)
	return s
}

// tracer turns pubsub's loss events into counters and, for gossipsub,
// feeds graftCatchUp. Pubsub calls it synchronously from its event loop,
// so every method is quick and never blocks.
type tracer struct {
	c       *counters
	catchUp *graftCatchUp // nil unless the router is gossipsub
	have    *haveSignals  // nil unless the node delays forwarding
	up      *uplink       // nil unless large writes take turns
}

var _ pubsub.RawTracer = tracer{}

func (t tracer) RejectMessage(_ *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		t.c.droppedValidation.Add(1)
	case pubsub.RejectMissingSignature, pubsub.RejectInvalidSignature,
		pubsub.RejectUnexpectedSignature, pubsub.RejectUnexpectedAuthInfo:
		t.c.gossipRejected.signature.Add(1)
	}
	// RejectValidationFailed and RejectValidationIgnored come from our own
	// validator, which has already counted them by reason.
}

func (t tracer) UndeliverableMessage(*pubsub.Message) { t.c.droppedSubscriptionFull.Add(1) }
func (t tracer) DropRPC(*pubsub.RPC, peer.ID)         { t.c.droppedOutbound.Add(1) }

func (t tracer) DuplicateMessage(msg *pubsub.Message) {
	t.c.duplicates.Add(1)
	if t.have != nil {
		t.have.duplicate(msg)
	}
}

func (t tracer) DeliverMessage(msg *pubsub.Message) {
	if t.catchUp != nil {
		t.catchUp.onDeliver(msg)
	}
	if t.have != nil {
		t.have.delivered(msg)
	}
}

func (t tracer) Graft(p peer.ID, topic string) {
	if t.have != nil {
		t.have.graft(p, topic)
	}
	if t.catchUp != nil {
		t.catchUp.onGraft(p, topic)
	}
}

func (t tracer) Prune(p peer.ID, topic string) {
	if t.have != nil {
		t.have.prune(p, topic)
	}
}

func (t tracer) OnClosedOutboundStream(p peer.ID) {
	if t.have != nil {
		t.have.gone(p)
	}
}

func (t tracer) RecvRPC(rpc *pubsub.RPC) {
	if t.up != nil {
		t.up.recv(rpc)
	}
	if t.have != nil {
		t.have.recv(rpc)
	}
}

func (tracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (tracer) Join(string)                                          {}
func (tracer) Leave(string)                                         {}
func (tracer) ValidateMessage(*pubsub.Message)                      {}
func (t tracer) ThrottlePeer(peer.ID)                               { t.c.throttledRPCs.Add(1) }
func (tracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
