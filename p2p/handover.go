package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// submit hands a full node's broadcast to the validators. A small one of
// its own goes in shares straight to the heads of the ring's parts
// (raintree.HandoverTargets from raintree.HandoverStart), so it takes as
// many hops as a validator's own; the shares of heads it has no
// connection to go through the parent, and those heads are dialled for
// the next time (dialHeads). A paced one, or one signed by another node
// (validators take parts only from the origin), goes whole to the parent.
func (m *Module) submit(ctx context.Context, bg *background.Router, msg *wire.Message) error {
	set := m.ValidatorSet()
	var targets []raintree.Target
	if msg.Origin == m.cfg.Key.Address {
		targets = m.handoverTargets(bg, set, len(msg.Raw))
	}
	if len(targets) == 0 {
		return bg.Submit(ctx, msg)
	}
	shares := make([]background.Share, len(targets))
	for i, t := range targets {
		shares[i] = background.Share{To: set.At(t.Index).PeerID, Parts: []wire.Part{{Start: t.Span.Start, Len: t.Span.Len}}}
	}
	m.dialHeads(set, targets)
	return bg.SubmitInShares(ctx, msg, set.Hash(), shares)
}

// handoverTargets is how this full node, with background router bg, hands
// over a broadcast of size bytes (none: whole, to its parent).
func (m *Module) handoverTargets(bg *background.Router, set *validators.Set, size int) []raintree.Target {
	rt, g := m.cfg.RainTree, m.cfg.Background.Gossip
	if bg == nil || !bg.LazyNetwork() || set == nil || set.Len() == 0 || !g.SubmitInParts ||
		rt.Mode != raintree.ModeCover || rt.Paces(size) {
		return nil
	}
	n := set.Len()
	return raintree.HandoverTargets(n, raintree.HandoverStart(n, []byte(m.host.ID())), rt.LevelsPerHopFor(n, size))
}

// dialHeads dials, in the background, the heads of targets this node has
// no connection to and has not dialled within Config.HandoverRedial, each
// dial given up after that long. Nothing is dialled once Close began.
func (m *Module) dialHeads(set *validators.Set, targets []raintree.Target) {
	now := time.Now()
	for _, t := range targets {
		v := set.At(t.Index)
		if m.host.Network().Connectedness(v.PeerID) == network.Connected || !m.headDials.due(v.PeerID, now) {
			continue
		}
		m.headDials.start(func() {
			ctx, cancel := context.WithTimeout(m.ctx, m.cfg.HandoverRedial)
			defer cancel()
			if err := m.host.Connect(ctx, v.AddrInfo()); err != nil && m.ctx.Err() == nil {
				m.headDialErrors.Add(1)
				m.log.Debug("dialling a handover head", "peer", v.PeerID, "err", err)
			}
		})
	}
}

// headDials remembers when a full node last dialled each of its handover
// heads, so that it dials each at most once per interval, and runs the
// dials. It holds at most 2 × wire.MaxParts heads (nine per set), and
// starts afresh past that (after set changes).
type headDials struct {
	mu    sync.Mutex
	every time.Duration
	last  map[peer.ID]time.Time
	runs  carriers
}

// due reports whether id may be dialled at now, and if so records it.
func (d *headDials) due(id peer.ID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.last[id]; ok && now.Sub(t) < d.every {
		return false
	}
	if d.last == nil || len(d.last) >= 2*wire.MaxParts {
		d.last = map[peer.ID]time.Time{}
	}
	d.last[id] = now
	return true
}

// start runs dial in its own goroutine, unless close was called.
func (d *headDials) start(dial func()) { d.runs.carry(dial) }

// close refuses further dials and waits for those running; their context
// must be cancelled first.
func (d *headDials) close() { d.runs.close() }

// hopsAfter is background.Config.HopsAfter: how many RainTree hops after
// validator from the last validator of the set in force gets msg when
// nothing fails. A full node holds a message that long for the validators
// in its mesh to say they have it (background forward.go), so a wrong
// answer costs a copy or a few milliseconds of repair, never the message.
func (m *Module) hopsAfter(msg *wire.Message, from peer.ID) (int, bool) {
	hop, last, ok := m.planHop(msg, from)
	return last - hop, ok
}

// hopOf is background.Config.HopOf: the RainTree hop at which validator p
// gets msg when nothing fails. A full node repairs a validator of its
// mesh that has not said it has msg a link after that hop (background
// repair.go), so a wrong answer costs a copy or a few milliseconds.
func (m *Module) hopOf(msg *wire.Message, p peer.ID) (int, bool) {
	hop, _, ok := m.planHop(msg, p)
	return hop, ok
}

// planHop is the hop at which validator p of the set in force gets a
// small msg when nothing fails, and the hop of its last validator. A
// validator's broadcast runs the tree rooted at it; anyone else's the
// handover in parts from the start its signer's ID gives
// (raintree.HandoverHops).
func (m *Module) planHop(msg *wire.Message, p peer.ID) (hop, last int, ok bool) {
	d, rt := m.depths.Load(), m.cfg.RainTree
	if d == nil || rt.Mode != raintree.ModeCover || rt.Paces(len(msg.Raw)) {
		return 0, 0, false
	}
	i, ok := d.set.IndexOfPeer(p)
	if !ok {
		return 0, 0, false
	}
	n := d.set.Len()
	if root, ok := d.set.IndexOf(msg.Origin); ok {
		return raintree.Hops(n, i-root, d.perHop), d.tree, true
	}
	signer, err := msg.Signer()
	if err != nil || !m.cfg.Background.Gossip.SubmitInParts {
		return 0, 0, false
	}
	start := raintree.HandoverStart(n, []byte(signer))
	return raintree.HandoverHops(n, i-start, d.perHop), d.handover, true
}

// planDepths are the hops at which a small broadcast reaches the last
// validator of set, a validator's (tree) and a full node's handed over in
// parts (handover), computed once when the set is taken on: a full node
// asks for them for every message it holds. Paced broadcasts, which run
// another number of levels per hop, are never asked about.
type planDepths struct {
	set            *validators.Set
	perHop         int // levels per hop of small broadcasts
	tree, handover int
}

func newPlanDepths(set *validators.Set, rt raintree.Config) *planDepths {
	n := set.Len()
	perHop := rt.LevelsPerHopFor(n, 0)
	return &planDepths{set: set, perHop: perHop, tree: raintree.TreeHops(n, perHop), handover: raintree.HandoverTreeHops(n, perHop)}
}
