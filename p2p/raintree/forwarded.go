package raintree

import (
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
// valid proof comes within forwardWait of the ACK, it re-delegates the
// span without its head (Redelegate), as for a missing ACK. Neither a
// relay nor the head can forge the proof; a head and one of its targets
// that collude can (docs/SECURITY.md).

// vouch is the proof a validator owes for a frame it received and
// forwards: whom to send it to and which frame it is about. The targets
// of the frame share one, so the first receipt is the one sent.
type vouch struct {
	to    peer.ID
	msgID wire.MessageID
	level int
	span  Span
	sent  atomic.Bool
}

// forwardSlack is added to a forwarding proof's wait for queues and
// scheduling.
const forwardSlack = 10 * time.Millisecond

// forwardWait is how long after d's ACK its head's proof may take: the
// head forwards a frame like d's (the transfer d took, twice for margin)
// and two round trips pass, its own frame's link and ACK and the proof's
// link (rtt, measured from d's send to its ACK, is at least one).
func forwardWait(d delegation, rtt time.Duration) time.Duration {
	return 2*d.xfer + 2*rtt + forwardSlack
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

// awaitProof starts waiting for the proof that d's head, which has just
// acknowledged, forwarded it.
func (r *Router) awaitProof(from peer.ID, d delegation) {
	now := r.clock.Now()
	rtt := max(now.Sub(d.sentAt), 0)
	d.proof = true
	key := ackKey{peer: from, msgID: d.msg.ID, level: d.target.Level, span: d.target.Span, proof: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.acks.Add(key, now.Add(forwardWait(d, rtt)), d)
	r.armLocked()
}

// vouchFor sends v's proof once, made of the receipt in ack, an ACK for
// one of v's targets.
func (r *Router) vouchFor(v *vouch, ack *wire.RainTreeMessage) {
	if len(ack.GetReceipt()) == 0 || !v.sent.CompareAndSwap(false, true) {
		return
	}
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind:             wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED,
		MessageId:        v.msgID[:],
		Level:            uint32(v.level),
		SpanStart:        uint32(v.span.Start),
		SpanLen:          uint32(v.span.Len),
		Receipt:          ack.GetReceipt(),
		ReceiptSpanStart: ack.GetSpanStart(),
		ReceiptSpanLen:   ack.GetSpanLen(),
		ReceiptLevel:     ack.GetLevel(),
	})
	if err != nil {
		r.log.Warn("encoding a forwarding proof", "err", err)
		return
	}
	r.queueACKFrame(ackJob{to: v.to, frame: frame, proof: true})
}

// onForwarded settles the proof that from forwarded a frame we sent it,
// once the receipt in m checks out (checkProof); a proof nobody waits for
// is counted and ignored, an invalid one held against from.
func (r *Router) onForwarded(from peer.ID, m *wire.RainTreeMessage) {
	id, err := wire.ParseMessageID(m.GetMessageId())
	if err != nil {
		r.invalid(&r.c.badReceipt, from, "forwarding proof without a message ID", err)
		return
	}
	key := ackKey{peer: from, msgID: id, level: int(m.GetLevel()), span: frameSpan(m), proof: true}
	r.mu.Lock()
	d, ok := r.acks.Peek(key)
	r.mu.Unlock()
	if !ok {
		r.c.proofsUnexpected.Add(1)
		return
	}
	if err := r.checkProof(d, m); err != nil {
		r.invalid(&r.c.badReceipt, from, "forwarding proof", err)
		return
	}
	r.mu.Lock()
	_, ok = r.acks.Ack(key)
	r.mu.Unlock()
	if ok {
		r.c.proofsReceived.Add(1)
	}
}

// checkProof verifies that m's receipt is about a frame of d's message
// whose span lies inside d's span, past its head, and that the validator
// at the start of that span signed it.
func (r *Router) checkProof(d delegation, m *wire.RainTreeMessage) error {
	n := d.view.set.Len()
	start, length := int(m.GetReceiptSpanStart()), int(m.GetReceiptSpanLen())
	offset := mod(start-d.target.Span.Start, n)
	if start >= n || length < 1 || offset == 0 || offset+length > d.target.Span.Len {
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
