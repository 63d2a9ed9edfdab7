package p2p

import (
	"context"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/background"
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

// republish hands a broadcast RainTree delivered to gossip, which forwards
// it to full nodes and advertises it to validators (background/lazy.go).
func (m *Module) republish(ctx context.Context, bg *background.Router, env *wire.Message) {
	if bg == nil {
		return
	}
	if err := bg.Republish(ctx, env); err != nil && !errors.Is(err, background.ErrClosed) && ctx.Err() == nil {
		m.log.Debug("handing a RainTree broadcast to gossip", "err", err)
	}
}
