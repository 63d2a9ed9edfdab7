package raintree

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Forwarding checks (Config.CheckForwarding), for paced (large) frames.
// An ACK says a validator has a frame, not that it passed the frame on,
// and a validator that acknowledges and then sits on a block (Silent) used
// to cost its whole span a slow gossip repair. Now the ACK of a paced
// frame carries the acknowledging validator's signed receipt of it
// (wire.Receipt). A validator that forwards such a frame sends its own
// sender, once, the first receipt one of its targets gave it (a
// FORWARDED frame). The sender checks that the receipt is about a frame
// of the same message inside the span it handed over, past its head,
// signed by the key the validator set lists for that frame's head. If no
// valid proof comes within forwardWait of the ACK, or an invalid one
// comes, it re-delegates the span without its head (Redelegate), as for a
// missing ACK. A head checks a receipt before it relays it. Neither a
// relay nor the head can forge the proof; a head and one of its targets
// that collude can (docs/SECURITY.md). Proofs travel on their own
// protocol (ProofProtocolID), which older nodes do not speak.

// vouch is the proof a validator owes for a frame it received and
// forwards: whom to send it to and which frame it is about. The targets
// of the frame share one, so the first receipt is the one sent.
type vouch struct {
	to    peer.ID
	msgID wire.MessageID
	level int
	span  Span
	sent  atomic.Bool
	// report, when set, takes the proof instead of a FORWARDED frame to
	// to: the root of a full node's submission (Router.RelayProving).
	report func(wire.Proof)
}

// forwardWait is how long after a frame's ACK its head's proof may take,
// elapsed being the time from the start of the frame's send to its ACK:
// the head forwards a frame of the same size (a transfer like ours) and
// two more links pass, its target's ACK and the proof, about another
// round trip like ours. factor (Config.ForwardFactor, at least 1) leaves
// room for a slower or busier head, and slack (Config.ForwardSlack)
// covers links so fast that scheduling dominates.
func forwardWait(elapsed time.Duration, factor float64, slack time.Duration) time.Duration {
	return time.Duration(factor*float64(max(elapsed, 0))) + slack
}

// checksForwarding reports whether d's head owes a proof of forwarding: a
// paced (large) cover-mode tree frame whose span holds others. Small
// frames are not checked: a proof takes two round trips after the ACK,
// as long as gossip takes to repair a span whose head sat on a small
// message, and a re-delegation would only add copies (ADR 0002).
func (r *Router) checksForwarding(d delegation) bool {
	return r.cfg.CheckForwarding && r.cfg.ACK && d.mode == ModeCover && d.target.Level > 0 && d.target.Span.Len > 1 &&
		r.cfg.Paces(len(d.msg.Raw))
}

// awaitProofLocked starts waiting for the proof that d's head, which has
// just acknowledged, forwarded it. The caller holds r.mu, and settled the
// ACK in the same critical section, so no proof finds neither wait.
func (r *Router) awaitProofLocked(from peer.ID, d delegation) {
	if r.closed {
		return
	}
	now := r.clock.Now()
	d.proof = true
	key := ackKey{peer: from, msgID: d.msg.ID, level: d.target.Level, span: d.target.Span, proof: true}
	r.acks.Add(key, now.Add(forwardWait(now.Sub(d.sentAt), r.cfg.ForwardFactor, r.cfg.ForwardSlack)), d)
	r.armLocked()
}

// receiptOf names the frame d sent.
func receiptOf(d delegation) wire.Receipt {
	return wire.Receipt{ID: d.msg.ID, SpanStart: uint32(d.target.Span.Start), SpanLen: uint32(d.target.Span.Len), Level: uint32(d.target.Level)}
}

// vouchFor sends d.vouch's proof, once, made of the receipt in ack: the
// ACK from's for the frame d. The receipt is checked first, so this node
// never relays one its sender would hold against it; a bad one is held
// against from, and the next target's may still serve.
func (r *Router) vouchFor(from peer.ID, d delegation, ack *wire.RainTreeMessage) {
	v := d.vouch
	// A full node takes only a receipt of one of the root's largest frames.
	if len(ack.GetReceipt()) == 0 || v.sent.Load() || v.report != nil && d.target.Span.Len < wire.MinProofSpan(d.view.set.Len()) {
		return
	}
	rc := receiptOf(d)
	if err := wire.VerifyReceipt(d.view.set.At(d.target.Index).PublicKey, r.cfg.NetworkID, rc, ack.GetReceipt()); err != nil {
		r.invalid(&r.c.badReceipt, from, "receipt in an ACK", err)
		return
	}
	if !v.sent.CompareAndSwap(false, true) {
		return
	}
	if v.report != nil { // counted where it is sent
		v.report(wire.Proof{Receipt: rc, Sig: bytes.Clone(ack.GetReceipt()), SetHash: []byte(d.view.hash)})
		return
	}
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind:             wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED,
		MessageId:        v.msgID[:],
		Level:            uint32(v.level),
		SpanStart:        uint32(v.span.Start),
		SpanLen:          uint32(v.span.Len),
		Receipt:          ack.GetReceipt(),
		ReceiptSpanStart: rc.SpanStart,
		ReceiptSpanLen:   rc.SpanLen,
		ReceiptLevel:     rc.Level,
	})
	if err != nil {
		r.log.Warn("encoding a forwarding proof", "err", err)
		return
	}
	r.queueACKFrame(ackJob{to: v.to, frame: frame, via: r.proofUni, sent: &r.c.proofsSent})
}

// onForwarded settles the proof that from forwarded a frame we sent it,
// if the receipt in m checks out (checkProof). The wait is claimed before
// the check, so each costs at most one; a proof that overtook its ACK
// (they travel on different streams) settles the ACK's wait instead, and
// the ACK is still awaited for its receipt (expectLateACKLocked). A
// proof nobody waits for is counted and ignored. An invalid one is held
// against from, which checks receipts before relaying them, and ends the
// wait at once: the span goes on without from.
func (r *Router) onForwarded(from peer.ID, m *wire.RainTreeMessage) {
	key, err := keyOf(from, m, true)
	if err != nil {
		r.invalid(&r.c.badReceipt, from, "forwarding proof without a message ID", err)
		return
	}
	r.mu.Lock()
	d, ok := r.acks.Ack(key)
	if !ok {
		ackWait := key
		ackWait.proof = false
		if w, waiting := r.acks.Peek(ackWait); waiting && w.lateACK {
			// Proven already: a second proof settles nothing, and the
			// late ACK's wait keeps its deadline (a head repeating its
			// proof would otherwise hold the frame for ever).
		} else if d, ok = r.acks.Ack(ackWait); ok {
			r.expectLateACKLocked(ackWait, d)
		}
	}
	r.mu.Unlock()
	if !ok {
		r.c.proofsUnexpected.Add(1)
		return
	}
	if err := r.checkProof(d, m); err != nil {
		r.invalid(&r.c.badReceipt, from, "forwarding proof", err)
		r.notForwarded(d)
		return
	}
	r.c.proofsReceived.Add(1)
	r.mu.Lock()
	delete(r.laggards, from)
	r.mu.Unlock()
}

// expectLateACKLocked keeps waiting, for ACKTimeout, for the ACK of d,
// whose proof of forwarding came first: ACKs and proofs travel on streams
// of their own, and a busy receiver may read the proof first. The ACK
// settles nothing any more, but it carries the head's receipt, which this
// node may still owe its own sender (vouchFor), and it is no stranger to
// count as unexpected. The caller holds r.mu, and claimed the ACK's wait
// in the same critical section, so the ACK finds one wait or the other.
func (r *Router) expectLateACKLocked(key ackKey, d delegation) {
	if r.closed {
		return
	}
	d.lateACK = true
	r.acks.Add(key, r.clock.Now().Add(r.cfg.ACKTimeout), d)
	r.armLocked()
}

// notForwarded gives up on d's head, which proved no forwarding: it
// becomes a laggard (Config.LaggardTTL) and the span goes on without it.
func (r *Router) notForwarded(d delegation) {
	r.c.notForwarded.Add(1)
	r.markLaggard(d.view.set.At(d.target.Index).PeerID, d.view.set.Len())
	r.redelegate(d)
}

// markLaggard makes head, of a set of n validators, a laggard for
// LaggardTTL (if on).
func (r *Router) markLaggard(head peer.ID, n int) {
	if r.cfg.LaggardTTL <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.laggards[head] = r.clock.Now()
	r.pruneLaggardsLocked(n)
}

// pruneLaggardsLocked forgets expired laggards once there are more than
// the n validators of the set.
func (r *Router) pruneLaggardsLocked(n int) {
	if len(r.laggards) <= n {
		return
	}
	now := r.clock.Now()
	for p, at := range r.laggards {
		if now.Sub(at) >= r.cfg.LaggardTTL {
			delete(r.laggards, p)
		}
	}
}

// passLaggard keeps a paced frame's span from a head that recently proved
// no forwarding: the head gets a frame of itself alone, and the next
// validator the rest of the span, both queued now. It reports whether it
// did so, in which case d itself is not to be sent.
func (r *Router) passLaggard(d delegation, to peer.ID) bool {
	if !r.checksForwarding(d) || r.cfg.LaggardTTL <= 0 {
		return false
	}
	r.mu.Lock()
	at, ok := r.laggards[to]
	r.mu.Unlock()
	if !ok || r.clock.Now().Sub(at) >= r.cfg.LaggardTTL {
		return false
	}
	r.c.skippedLaggards.Add(1)
	alone := d
	alone.target.Span = Span{Start: d.target.Index, Len: 1}
	// d's first attempt is reported by whoever sends d (sendTree): a
	// second report would find a waiting Broadcast's results full.
	alone.result = nil
	r.enqueue(alone)
	r.redelegate(d)
	return true
}

// checkProof verifies that m's receipt is about a frame of d's message
// whose span lies inside d's span, past its head, and that the validator
// at the start of that span signed it. Any other receipt_level than the
// one signed fails the signature.
func (r *Router) checkProof(d delegation, m *wire.RainTreeMessage) error {
	n := d.view.set.Len()
	// Compared as sent, before any conversion can turn them negative.
	if m.GetReceiptSpanStart() >= uint32(n) || m.GetReceiptSpanLen() < 1 || m.GetReceiptSpanLen() > uint32(n) {
		return errProofOutsideSpan
	}
	start, length := int(m.GetReceiptSpanStart()), int(m.GetReceiptSpanLen())
	if offset := mod(start-d.target.Span.Start, n); offset == 0 || offset+length > d.target.Span.Len {
		return errProofOutsideSpan
	}
	rc := wire.Receipt{ID: d.msg.ID, SpanStart: uint32(start), SpanLen: uint32(length), Level: m.GetReceiptLevel()}
	return wire.VerifyReceipt(d.view.set.At(start).PublicKey, r.cfg.NetworkID, rc, m.GetReceipt())
}

// receipt signs this node's receipt of the frame m, a paced one (only
// those are checked), or returns nil: a small frame, or a host that
// holds no private key.
func (r *Router) receipt(m *wire.RainTreeMessage) []byte {
	if r.key == nil || !r.cfg.Paces(len(m.GetData())) {
		return nil
	}
	id, err := wire.ParseMessageID(m.GetMessageId())
	if err != nil {
		return nil
	}
	sig, err := wire.SignReceipt(r.key, r.cfg.NetworkID, wire.Receipt{ID: id, SpanStart: m.GetSpanStart(), SpanLen: m.GetSpanLen(), Level: m.GetLevel()})
	if err != nil {
		r.log.Warn("signing a receipt", "err", err)
		return nil
	}
	return sig
}
