package raintree

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// RelayParts starts msg, a full node's own broadcast handed over in parts
// (HandoverTargets) by from, on those parts of the set with setHash, in
// cover mode: a part that starts at this validator is planned from here
// as if a tree frame had brought it, and any other (one whose head the
// full node could not reach) is sent to its head as a tree frame, with ACK
// re-delegation like every tree frame. It returns ErrBadHandover, having
// sent nothing, and counts it in Stats.HandoversRefused, when the set is
// not one this validator knows itself in, when from is not msg's origin,
// or when the parts are not disjoint runs of the ring (the last two held
// against from: only the origin hands its broadcast over, and it splits
// the ring). The caller then relays the whole ring (Relay): a bad
// handover costs duplicates, never a message, and nobody but the origin
// can choose which parts of a broadcast a validator starts.
func (r *Router) RelayParts(from peer.ID, msg *wire.Message, setHash []byte, parts []Span) error {
	if msg == nil || len(msg.Raw) > r.cfg.MaxMessageSize {
		return fmt.Errorf("raintree: relaying parts: %w", wire.ErrTooLarge)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	view := r.viewLocked(setHash)
	r.mu.Unlock()
	switch origin, err := identity.AddressFromPeerID(from); {
	case err != nil || origin != msg.Origin:
		r.invalid(&r.c.handoversRefused, from, "a handover of another node's broadcast", ErrBadHandover)
		return ErrBadHandover
	case view == nil || view.self < 0 || r.cfg.Mode != ModeCover:
		r.drop(&r.c.handoversRefused, from, "a handover on a set not planned here", ErrBadHandover)
		return ErrBadHandover
	case !disjointParts(view.set.Len(), parts):
		r.invalid(&r.c.handoversRefused, from, "a handover of overlapping parts", ErrBadHandover)
		return ErrBadHandover
	}
	r.c.partsRelayed.Add(uint64(len(parts)))
	for _, d := range r.handoverDelegations(view, msg, parts) {
		r.enqueue(d)
	}
	return nil
}

// handoverDelegations lists the tree frames this validator sends for the
// parts of a handover.
func (r *Router) handoverDelegations(view *setView, msg *wire.Message, parts []Span) []delegation {
	n := view.set.Len()
	perHop := r.cfg.LevelsPerHopFor(n, len(msg.Raw))
	var ds []delegation
	for _, p := range parts {
		if p.Start != view.self {
			t := Target{Index: p.Start, Level: PartLevel(p.Len), Span: p}
			ds = append(ds, delegation{view: view, mode: ModeCover, target: t, msg: msg})
			continue
		}
		if r.observe(seenKey{id: msg.ID, span: p}, msg) != dedup.First {
			continue // a tree frame brought this part first
		}
		for _, t := range CoverTargets(n, p, PartLevel(p.Len), perHop) {
			ds = append(ds, delegation{view: view, mode: ModeCover, target: t, msg: msg})
		}
	}
	return ds
}

// disjointParts reports whether parts are non-empty, pairwise disjoint
// runs of a ring of n.
func disjointParts(n int, parts []Span) bool {
	total := 0
	for i, p := range parts {
		if p.Start < 0 || p.Start >= n || p.Len < 1 || p.Len > n {
			return false
		}
		if total += p.Len; total > n {
			return false
		}
		for _, q := range parts[:i] {
			if mod(q.Start-p.Start, n) < p.Len || mod(p.Start-q.Start, n) < q.Len {
				return false
			}
		}
	}
	return len(parts) > 0
}
