package raintree

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// RelayParts starts msg, a full node's own broadcast handed over in parts
// (HandoverTargets) by from, on those parts of the set with setHash, in
// cover mode: a part that starts at this validator is planned from here
// as if a tree frame had brought it, and any other (one whose head the
// full node could not reach) is sent to its head as a tree frame, with ACK
// re-delegation like every tree frame; if this validator has no
// connection to that head either, the part goes to the next connected
// validator in it, as a re-delegated span does (each one before it
// getting a part of itself alone). A part is started once: a resend of it
// is counted in Stats.Duplicates and dropped.
//
// It returns ErrBadHandover, having sent nothing, and counts it in
// Stats.HandoversRefused, when the set is not one this validator knows
// itself in, or when from is not msg's origin or the parts are not
// distinct parts from HandoverParts for from (these two held against
// from: only the origin hands its broadcast over, and its parts follow
// from its ID). The caller then relays the whole ring (Relay) if the
// message is new to it: a bad handover costs duplicates, never a message,
// nobody but the origin can choose which parts of a broadcast a validator
// starts, and the origin only among its own few.
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
	// The signer's peer ID, not an address derived from from: RSA and
	// ECDSA peer IDs are hashes that no address can be read from.
	switch signer, err := msg.Signer(); {
	case err != nil || signer != from:
		r.invalid(&r.c.handoversRefused, from, "a handover of another node's broadcast", ErrBadHandover)
		return ErrBadHandover
	case view == nil || view.self < 0 || r.cfg.Mode != ModeCover:
		r.drop(&r.c.handoversRefused, from, "a handover on a set not planned here", ErrBadHandover)
		return ErrBadHandover
	case !validHandover(view.set.Len(), from, parts):
		r.invalid(&r.c.handoversRefused, from, "a handover of parts not its own or overlapping", ErrBadHandover)
		return ErrBadHandover
	}
	r.c.partsRelayed.Add(uint64(len(parts)))
	ds := r.handoverDelegations(view, msg, parts)
	// Parts are planned one after another; hops go highest level first.
	slices.SortStableFunc(ds, func(x, y delegation) int { return cmp.Compare(y.target.Level, x.target.Level) })
	r.sendHops(msg, ds)
	return nil
}

// handoverDelegations lists the tree frames this validator sends for the
// parts of a handover, each part once.
func (r *Router) handoverDelegations(view *setView, msg *wire.Message, parts []Span) []delegation {
	n := view.set.Len()
	perHop := r.cfg.LevelsPerHopFor(n, len(msg.Raw))
	var ds []delegation
	for _, p := range parts {
		// The seen memory only ever holds spans starting here for frames
		// received, so a part starting elsewhere has a key of its own.
		switch v := r.observe(seenKey{id: msg.ID, span: p}, msg); v {
		case dedup.First:
		case dedup.Duplicate:
			r.c.duplicates.Add(1)
			continue
		default:
			r.c.stale.Add(1)
			continue
		}
		if p.Start == view.self {
			for _, t := range CoverTargets(n, p, PartLevel(p.Len), perHop) {
				ds = append(ds, delegation{view: view, mode: ModeCover, target: t, msg: msg})
			}
			continue
		}
		// The full node could not reach this head, so it may be down.
		for _, t := range r.aroundHandedOnHead(view, Target{Index: p.Start, Level: PartLevel(p.Len), Span: p}) {
			ds = append(ds, delegation{view: view, mode: ModeCover, target: t, msg: msg})
		}
	}
	return ds
}

// validHandover reports whether parts are distinct, pairwise disjoint
// parts the full node from may hand over on a ring of n (HandoverParts).
func validHandover(n int, from peer.ID, parts []Span) bool {
	if len(parts) == 0 {
		return false
	}
	allowed := HandoverParts(n, []byte(from))
	for i, p := range parts {
		if !slices.Contains(allowed, p) {
			return false
		}
		for _, q := range parts[:i] {
			if mod(q.Start-p.Start, n) < p.Len || mod(p.Start-q.Start, n) < q.Len {
				return false
			}
		}
	}
	return true
}

// aroundHandedOnHead plans a part whose head the full node could not
// reach: as a re-delegated span when this validator is not connected to
// the head either (aroundUnconnected), and if no validator of the part is
// connected, the head alone and the rest to the next validator, so that a
// head that is down delays only itself.
func (r *Router) aroundHandedOnHead(v *setView, t Target) []Target {
	ts := r.aroundUnconnected(v, t)
	if len(ts) > 1 || t.Span.Len <= 1 || r.host.Network().Connectedness(v.set.At(t.Index).PeerID) == network.Connected {
		return ts
	}
	rest, _ := Redelegate(v.set.Len(), t)
	if rest.Index == v.self {
		return ts // this validator sits inside the part: the head's frame reaches it
	}
	return []Target{{Index: t.Index, Level: t.Level, Span: Span{Start: t.Index, Len: 1}}, rest}
}
