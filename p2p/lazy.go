package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// validatorIDs lists the validators' peer IDs in ring order. Under lazy
// gossip a validator keeps the others out of its mesh, and a full node
// picks its parent among them and checks its parent's proofs against
// them (background/lazy.go, background/proof.go).
func (m *Module) validatorIDs(set *validators.Set) []peer.ID {
	ids := make([]peer.ID, 0, set.Len())
	for _, v := range set.Validators() {
		ids = append(ids, v.PeerID)
	}
	return ids
}

// handToGossip hands a broadcast RainTree delivered to a lazy validator
// (or that it originated, or a full node handed it) to its gossip, which
// feeds its mesh of full nodes. It is called once this node's RainTree
// frames of msg have left (raintree.Config.OnTreeSent; a leaf at once):
// every copy shares the uplink, and the tree comes first.
func (m *Module) handToGossip(ctx context.Context, bg *background.Router, msg *wire.Message) {
	if bg == nil {
		return
	}
	if err := bg.Republish(ctx, msg); err != nil && !errors.Is(err, background.ErrClosed) && ctx.Err() == nil {
		m.log.Debug("handing a RainTree broadcast to gossip", "err", err)
	}
}

// broadcastLazy is a lazy validator's broadcast: RainTree carries it to the
// validators and each of them, this one included, to its mesh of full
// nodes; gossip carries it alone only if RainTree could not take it.
func (m *Module) broadcastLazy(ctx context.Context, rain *raintree.Router, bg *background.Router, msg *wire.Message) error {
	err := rain.Broadcast(ctx, msg)
	if err == nil && m.ValidatorSet().Len() <= 1 { // a lone validator's tree reaches nobody
		err = ErrNoPeers
	}
	if err == nil {
		return nil // gossip gets it once the tree frames have left
	}
	m.sendErrors.Add(1)
	m.log.Warn("raintree could not take a broadcast; gossip carries it", "err", err)
	if bgErr := bg.Broadcast(ctx, msg); bgErr != nil {
		m.sendErrors.Add(1)
		return fmt.Errorf("broadcast: %w", errors.Join(fmt.Errorf("raintree: %w", err), fmt.Errorf("background: %w", bgErr)))
	}
	return nil
}

// takeRepair delivers a broadcast a full node of this validator's mesh
// repaired (background.ViaRepair) the first time it is seen, having first
// published it on gossip, which tells the mesh this node has it. It starts
// nothing on RainTree: the validators below this one have full nodes of
// their own to repair them.
func (m *Module) takeRepair(from peer.ID, msg *wire.Message) {
	if !m.firstSight(RouterBackground, from, msg) {
		return
	}
	if _, bg, err := m.liveRouters(); err == nil {
		m.handToGossip(m.ctx, bg, msg)
	}
	m.hand(m.ctx, RouterBackground, from, msg, true)
}

// relaySubmission starts a broadcast a full node handed to this node
// (background.ViaSubmit): on RainTree from a validator (see
// relayOnRainTree), on gossip otherwise (a former validator the full node
// still took for one), and delivers it, once. A handover of parts is
// started even when the message came another way first (gossip may bring
// it before the submission): RainTree itself keeps a part from being
// started twice.
func (m *Module) relaySubmission(from peer.ID, msg *wire.Message, parts wire.Handover) {
	v := m.sight(RouterBackground, from, msg)
	first := v == dedup.First
	if !first && (v != dedup.Duplicate || len(parts.Parts) == 0) {
		return
	}
	rain, bg, err := m.liveRouters()
	if err != nil {
		return
	}
	switch {
	case m.cfg.Silent:
		// Fault injection: starting a broadcast for a full node is
		// forwarding it, which a silent node never does.
	case rain != nil:
		// Gossip gets it once the tree frames have left (handToGossip).
		var prove func(wire.Proof)
		if bg != nil {
			prove = func(p wire.Proof) { bg.SendProof(from, p) }
		}
		if err := relayOnRainTree(rain, from, msg, parts, first, prove); err != nil {
			m.sendErrors.Add(1)
			m.log.Debug("relaying a submitted broadcast on raintree", "from", from, "err", err)
			if first {
				m.handToGossip(m.ctx, bg, msg)
			}
		}
	case bg != nil && first:
		if err := bg.Broadcast(m.ctx, msg); err != nil {
			m.sendErrors.Add(1)
			m.log.Debug("publishing a submitted broadcast", "from", from, "err", err)
		}
	}
	if first {
		m.hand(m.ctx, RouterBackground, from, msg, true)
	}
}

// relayOnRainTree starts a submitted broadcast on the parts of the ring
// its full node handed over, or, the first time it is seen, on the whole
// ring when it handed none or RainTree refused them
// (raintree.ErrBadHandover: another set, parts that overlap, or a
// submitter that is not the origin): a bad handover costs duplicates,
// never the message. A whole ring asking for a proof hands prove the
// first receipt that proves it (raintree.Router.RelayProving).
func relayOnRainTree(rain *raintree.Router, from peer.ID, msg *wire.Message, h wire.Handover, first bool, prove func(wire.Proof)) error {
	if h.WantProof && len(h.Parts) == 0 && prove != nil {
		// The full node awaits the proof that its block started
		// (background/proof.go).
		return rain.RelayProving(msg, prove)
	}
	if len(h.Parts) > 0 {
		spans := make([]raintree.Span, len(h.Parts))
		for i, p := range h.Parts {
			spans[i] = raintree.Span{Start: p.Start, Len: p.Len}
		}
		if err := rain.RelayParts(from, msg, h.SetHash, spans); !errors.Is(err, raintree.ErrBadHandover) || !first {
			return err
		}
	}
	return rain.Relay(msg)
}
