package background

import (
	"context"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Lazy gossip among validators.
//
// RainTree already carries every validator's broadcast to every validator
// in N-1 messages. If validators also meshed with each other, each would
// receive about D more gossip copies of every message. So a validator that
// runs RainTree (Config.RainTreeValidator) treats the other validators as
// lazy peers:
//
//   - it gives them a negative application score (P5, lazyScore), which keeps
//     them out of its mesh in both directions (gossipsub neither grafts nor
//     accepts grafts from peers below 0) but stays above the gossip
//     threshold, so IHAVE/IWANT still flow between validators and repair
//     whatever RainTree missed;
//   - its mesh, made of full nodes, is small (GossipParams.ValidatorD),
//     because each mesh link costs one copy per message;
//   - it does not flood-publish: RainTree reaches the validators, the mesh
//     the full nodes;
//   - a leaf of a message's RainTree, which gets it when nearly every
//     validator already has it, hands it to gossip at once (Republish):
//     gossip forwards it to the leaf's full-node mesh peers and advertises
//     it. The other validators, the originator included, leave gossip
//     alone: had they pushed at once, full nodes would have had the
//     message early and pushed it on to validators RainTree had not reached
//     yet. Their gossip learns the message like any other, from a full
//     node's push or a leaf's IHAVE, and forwards it as usual, so a full
//     node whose only peers are interior validators still gets it;
//   - a validator's own broadcast goes to RainTree only; gossip carries it
//     at once only if RainTree could not take it.
//
// Full nodes are untouched: they run plain gossipsub and get the payload
// eagerly from their mesh, which includes validators.

// lazyScore is the application score of a lazy peer: far enough below
// zero that first-delivery rewards (P2, at most 25) never lift it into the
// mesh, and far above the default gossip threshold (-500), so IHAVE/IWANT
// keep flowing. Invalid messages (P4) push a lazy peer down as anyone else.
const lazyScore = -100

// lazySet holds the peers gossip treats lazily. The score function reads
// it on pubsub's event loop while the Module replaces it, hence the lock.
type lazySet struct {
	mu  sync.RWMutex
	ids map[peer.ID]struct{}
}

func (l *lazySet) replace(ids []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	l.mu.Lock()
	l.ids = m
	l.mu.Unlock()
}

func (l *lazySet) contains(id peer.ID) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.ids[id]
	return ok
}

// lazy reports whether this router gossips lazily with RainTree peers.
func (c Config) lazy() bool {
	return c.RainTreeValidator && c.Gossip.LazyAmongValidators && (c.PubSub == GossipSub || c.PubSub == "")
}

// SetRainTreePeers replaces the peers RainTree already reaches (the other
// validators). With lazy gossip they are never in this node's mesh; without
// it the call only records them.
func (r *Router) SetRainTreePeers(ids []peer.ID) { r.lazy.replace(ids) }

// appScore is gossipsub's application-specific score (P5).
func (r *Router) appScore(p peer.ID) float64 {
	if r.cfg.lazy() && r.lazy.contains(p) {
		return lazyScore
	}
	return 0
}

// effectiveGossip is the gossip configuration pubsub runs with: the
// validator's small mesh and no flood publishing under lazy gossip.
func (c Config) effectiveGossip() GossipParams {
	g := c.Gossip
	if c.lazy() {
		g.D, g.Dlo, g.Dhi = g.ValidatorD, max(1, g.ValidatorD-1), g.ValidatorD
		g.FloodPublish = false
	}
	return g
}

// lazyOnlyScoreOptions installs scoring with nothing but the application
// score, for lazy gossip with Config.Scoring disabled.
func (r *Router) lazyOnlyScoreOptions() []pubsub.Option {
	if !r.cfg.lazy() {
		return nil
	}
	d := DefaultScoreParams()
	return []pubsub.Option{pubsub.WithPeerScore(
		&pubsub.PeerScoreParams{
			SkipAtomicValidation: true,
			AppSpecificScore:     r.appScore,
			AppSpecificWeight:    1,
			DecayInterval:        scoreDecayInterval,
			DecayToZero:          scoreDecayToZero,
		},
		&pubsub.PeerScoreThresholds{
			SkipAtomicValidation: true,
			GossipThreshold:      d.GossipThreshold,
			PublishThreshold:     d.PublishThreshold,
			GraylistThreshold:    d.GraylistThreshold,
		},
	)}
}

// Lazy reports whether this router gossips lazily with RainTree peers
// (Config.RainTreeValidator with Gossip.LazyAmongValidators).
func (r *Router) Lazy() bool { return r.cfg.lazy() }

// Republish hands gossip a message RainTree delivered to a leaf of its
// tree, by which time nearly every validator has it: gossip forwards it to
// this node's full-node mesh peers and advertises it. The handler is not
// called for it. It does nothing unless the router is Lazy.
func (r *Router) Republish(ctx context.Context, msg *wire.Message) error {
	if !r.cfg.lazy() || r.cfg.Silent {
		return nil
	}
	topic, err := r.topicIfStarted()
	if err != nil {
		return err
	}
	frame, err := wire.EncodeBackground(msg.Raw)
	if err != nil {
		return fmt.Errorf("republish: %w", err)
	}
	r.catchUp.onPublish(r.gossipID(msg))
	if err := topic.Publish(ctx, frame); err != nil {
		r.c.republishErrors.Add(1)
		return fmt.Errorf("republish on %s: %w", r.topicName, err)
	}
	r.c.republished.Add(1)
	return nil
}
