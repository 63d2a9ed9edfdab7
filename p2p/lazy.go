package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// rainTreePeers lists the peers RainTree reaches from this node: the other
// validators when this node runs RainTree, none otherwise. Gossip treats
// them lazily (background.Router.SetRainTreePeers).
func (m *Module) rainTreePeers(set *validators.Set) []peer.ID {
	if m.cfg.Routers != RoutersBoth || !set.Contains(m.cfg.Key.Address) {
		return nil
	}
	var ids []peer.ID
	for _, v := range set.Validators() {
		if v.PeerID != m.host.ID() {
			ids = append(ids, v.PeerID)
		}
	}
	return ids
}

// handToGossip hands a broadcast RainTree delivered to a lazy validator's
// gossip if this node is a leaf of the tree; interior validators leave
// gossip to learn it by itself (background/lazy.go).
func (m *Module) handToGossip(ctx context.Context, bg *background.Router, msg *wire.Message, leaf bool) {
	if bg == nil || !leaf {
		return
	}
	if err := bg.Republish(ctx, msg); err != nil && !errors.Is(err, background.ErrClosed) && ctx.Err() == nil {
		m.log.Debug("handing a RainTree broadcast to gossip", "err", err)
	}
}

// broadcastLazy is a lazy validator's broadcast: RainTree carries it to the
// validators and its leaves feed the full nodes, so gossip carries it only
// if RainTree could not take it.
func (m *Module) broadcastLazy(ctx context.Context, rain *raintree.Router, bg *background.Router, msg *wire.Message) error {
	err := rain.Broadcast(ctx, msg)
	if err == nil && m.ValidatorSet().Len() <= 1 { // a lone validator's tree reaches nobody
		err = ErrNoPeers
	}
	if err == nil {
		return nil
	}
	m.sendErrors.Add(1)
	m.log.Warn("raintree could not take a broadcast; gossip carries it", "err", err)
	if bgErr := bg.Broadcast(ctx, msg); bgErr != nil {
		m.sendErrors.Add(1)
		return fmt.Errorf("broadcast: %w", errors.Join(fmt.Errorf("raintree: %w", err), fmt.Errorf("background: %w", bgErr)))
	}
	return nil
}
