package background

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Lazy gossip (GossipParams.LazyAmongValidators, ADR 0002).
//
// RainTree already carries every broadcast to every validator in N-1
// messages. Gossip's job is then to feed the full nodes and to repair what
// RainTree missed, and every payload copy a validator gets from gossip is
// a copy too many. So:
//
//   - A validator gives the other validators lazyScore: below zero, so
//     gossipsub neither grafts them nor accepts their grafts, and above the
//     gossip threshold, so IHAVE/IWANT still flow between validators. Its
//     mesh holds full nodes only (about ValidatorD, plus those that graft
//     it), and it never flood-publishes.
//   - A validator hands every broadcast RainTree delivers to gossip at once
//     (Republish): pubsub tells its mesh peers it has the message
//     (IDONTWANT) and pushes it to those that have not said the same.
//   - A full node forwards what it receives only once the validators in
//     its mesh have had the message from RainTree and said so, or after a
//     link for each RainTree hop the broadcast has left and a round trip
//     more (two round trips when its plan is unknown; forward.go,
//     release.go, rtt.go); only those that did not (below a silent
//     validator in the tree) get a copy. It scores the validators
//     keptScore, so that it keeps them in its mesh.
//   - A full node hands its own broadcast to one connected validator, its
//     parent (Submit), which starts it on RainTree as if it were its own;
//     the full node publishes it itself only if it has not come back
//     within SubmitFallback.
//
// Nothing changes on the wire: a stock gossipsub node joins as a full
// node, and its broadcasts spread as plain gossip.

// lazyScore is the application score of a lazy peer: far enough below
// zero that first-delivery rewards (P2, at most 25) never lift it into the
// mesh, and far above the default gossip threshold (-500), so IHAVE/IWANT
// keep flowing. Invalid messages (P4) push a lazy peer down as anyone else.
const lazyScore = -100

// keptScore is the application score a full node of a lazy network gives
// the validators: above anything first deliveries (P2, at most 25) give a
// full node, so that when its mesh is oversubscribed and pubsub prunes it
// to D, keeping the Dscore best-scoring peers (Dscore is D in a lazy
// network, gossipSubParams), it keeps the validators that grafted it.
// Otherwise a validator, whose mesh is a couple of full nodes, could be
// pruned by all of them at once (heartbeats coincide) and
// spend up to a heartbeat with no mesh at all; a validator below a silent
// one in RainTree then waited for IHAVE, hundreds of milliseconds, where
// its full nodes' forward would have come in tens (ADR 0002). Silent
// validators, which never deliver first, were pruned first.
const keptScore = 30

// parentRetry bounds how often a full node without a connected parent
// looks for one: the score function runs for every peer on every refresh.
const parentRetry = time.Second

// lazySet holds the validator set's peer IDs and, on a full node, its
// parent. The score function reads it on pubsub's event loop while the
// Module replaces it, hence the lock.
type lazySet struct {
	mu  sync.Mutex
	ids map[peer.ID]struct{}
	// ring is the set in ring order, self included, and ringHash the
	// set's hash.
	ring       []peer.ID
	ringHash   []byte
	parent     peer.ID
	lastSearch time.Time
	// passedOver holds the parents that proved no block, until when they
	// are passed over and which block it was (proof.go); only validators
	// of the set.
	passedOver map[peer.ID]passedOver
}

// passedOver is a parent passed over until until, for block msg.
type passedOver struct {
	until time.Time
	msg   wire.MessageID
}

// replace takes on the set ring of hash setHash, in ring order; self is
// left out of ids.
func (l *lazySet) replace(self peer.ID, setHash []byte, ring []peer.ID) {
	m := make(map[peer.ID]struct{}, len(ring))
	for _, id := range ring {
		if id != self {
			m[id] = struct{}{}
		}
	}
	l.mu.Lock()
	l.ids, l.ring, l.ringHash = m, slices.Clone(ring), setHash
	if _, ok := m[l.parent]; !ok {
		l.parent, l.lastSearch = "", time.Time{}
	}
	for id := range l.passedOver {
		if _, ok := m[id]; !ok {
			delete(l.passedOver, id)
		}
	}
	l.mu.Unlock()
}

// ringOf returns the ring, in ring order, when setHash names the set
// taken on last. The slice is replaced, never changed, so it may be read
// without the lock.
func (l *lazySet) ringOf(setHash []byte) ([]peer.ID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ring, bytes.Equal(setHash, l.ringHash)
}

func (l *lazySet) ringLen() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ring)
}

// restore stops passing id over when it was for block msg: it proved
// that block after all.
func (l *lazySet) restore(id peer.ID, msg wire.MessageID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.passedOver[id]
	if !ok || p.msg != msg {
		return false
	}
	delete(l.passedOver, id)
	return true
}

// isPassedOver reports whether id is passed over now.
func (l *lazySet) isPassedOver(id peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.passedOverLocked(id, time.Now())
}

// passOver makes parentOf skip validator id until until, for block msg,
// and look for another parent at once if id is the current one.
func (l *lazySet) passOver(id peer.ID, until time.Time, msg wire.MessageID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.ids[id]; !ok {
		return
	}
	if l.passedOver == nil {
		l.passedOver = map[peer.ID]passedOver{}
	}
	l.passedOver[id] = passedOver{until: until, msg: msg}
	if l.parent == id {
		l.parent, l.lastSearch = "", time.Time{}
	}
}

// passedOverLocked reports whether id is passed over at now, forgetting
// it once it no longer is.
func (l *lazySet) passedOverLocked(id peer.ID, now time.Time) bool {
	p, ok := l.passedOver[id]
	if ok && !now.Before(p.until) {
		delete(l.passedOver, id)
		return false
	}
	return ok
}

func (l *lazySet) contains(id peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.ids[id]
	return ok
}

// parentOf returns self's parent: the eligible validator closest to self
// (closest), kept
// while it stays connected. It returns "" when no validator is connected,
// and looks again at most every parentRetry.
func (l *lazySet) parentOf(self peer.ID, net network.Network) peer.ID {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parent != "" && net.Connectedness(l.parent) == network.Connected {
		return l.parent
	}
	now := time.Now()
	if now.Sub(l.lastSearch) < parentRetry {
		return ""
	}
	l.parent, l.lastSearch = closest(self, l.eligibleLocked(net, now)), now
	return l.parent
}

// eligibleLocked lists the validators that may be a parent at now:
// connected and not passed over. l.mu is held.
func (l *lazySet) eligibleLocked(net network.Network, now time.Time) []peer.ID {
	var ids []peer.ID
	for id := range l.ids {
		if net.Connectedness(id) == network.Connected && !l.passedOverLocked(id, now) {
			ids = append(ids, id)
		}
	}
	return ids
}

// closest returns the one of ids whose hash with self is the smallest (so
// full nodes spread over the validators), or "" for none.
func closest(self peer.ID, ids []peer.ID) peer.ID {
	var best peer.ID
	var bestHash uint64
	for _, id := range ids {
		if h := pairHash(self, id); best == "" || h < bestHash {
			best, bestHash = id, h
		}
	}
	return best
}

// preferForwarding makes a validator that forwards (forwards: it showed
// so lately, proof.go's blockParent) the parent, when the current
// one, current, does not: the eligible one whose hash with self is the
// smallest. It returns the parent, current when none forwards.
func (l *lazySet) preferForwarding(self peer.ID, net network.Network, current peer.ID, forwards func(peer.ID) bool) peer.ID {
	if forwards(current) {
		return current
	}
	// forwards takes the mesh's lock, whose holder may ask l (contains),
	// so it runs without l.mu.
	l.mu.Lock()
	candidates := l.eligibleLocked(net, time.Now())
	l.mu.Unlock()
	best := closest(self, slices.DeleteFunc(candidates, func(id peer.ID) bool { return !forwards(id) }))
	if best == "" {
		return current
	}
	l.mu.Lock()
	if l.parent == current {
		l.parent = best
	}
	l.mu.Unlock()
	return best
}

func pairHash(a, b peer.ID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(a))
	h.Write([]byte(b))
	return h.Sum64()
}

// lazy reports whether this router is a validator that gossips lazily
// with the other validators.
func (c Config) lazy() bool {
	return c.RainTreeValidator && c.lazyNetwork()
}

// lazyNetwork reports whether the network runs lazy gossip: validators
// lazy with each other, full nodes with one parent each.
func (c Config) lazyNetwork() bool {
	return c.Gossip.LazyAmongValidators && (c.PubSub == GossipSub || c.PubSub == "")
}

// SetValidatorIDs replaces the peer IDs of the validator set with hash
// setHash, in ring order (this node's own ID, if there, is skipped): under lazy gossip a
// validator keeps them out of its mesh, and a full node picks its parent
// among them and checks its parent's proofs against them (proof.go).
func (r *Router) SetValidatorIDs(setHash []byte, ring []peer.ID) {
	r.lazy.replace(r.host.ID(), setHash, ring)
}

// Parent returns the validator a full node of a lazy network submits its
// broadcasts to, or "" (not such a full node, or no validator connected).
func (r *Router) Parent() peer.ID {
	if !r.cfg.lazyNetwork() || r.cfg.RainTreeValidator {
		return ""
	}
	return r.lazy.parentOf(r.host.ID(), r.host.Network())
}

// appScore is gossipsub's application-specific score (P5): a lazy
// validator's score for the other validators (lazyScore), and a full node
// of a lazy network's for the validators (keptScore).
func (r *Router) appScore(p peer.ID) float64 {
	switch {
	case !r.lazy.contains(p):
		return 0
	case r.cfg.lazy():
		return lazyScore
	case r.cfg.lazyNetwork() && !r.cfg.RainTreeValidator:
		return keptScore
	}
	return 0
}

// effectiveGossip is the gossip configuration pubsub runs with: every node
// of a lazy network advertises to LazyDlazy peers per heartbeat, and a lazy
// validator aims for a mesh of ValidatorD full nodes, keeps at most
// ValidatorDhi, and never flood-publishes.
func (c Config) effectiveGossip() GossipParams {
	g := c.Gossip
	if c.lazyNetwork() {
		g.Dlazy = g.LazyDlazy
	} else {
		g.LazyAmongValidators = false // nothing lazy about it (see gossipSubParams)
	}
	if c.lazy() {
		g.D, g.Dlo = g.ValidatorD, max(1, g.ValidatorD-1)
		g.Dhi = max(g.ValidatorDhi, g.D)
		g.FloodPublish = false
	}
	return g
}

// lazyOnlyScoreOptions installs scoring with nothing but the application
// score, for lazy gossip with Config.Scoring disabled: on validators and
// full nodes alike.
func (r *Router) lazyOnlyScoreOptions() []pubsub.Option {
	if !r.cfg.lazyNetwork() {
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

// Lazy reports whether this router is a validator that gossips lazily
// with the other validators (Config.RainTreeValidator with
// Gossip.LazyAmongValidators).
func (r *Router) Lazy() bool { return r.cfg.lazy() }

// LazyNetwork reports whether the network runs lazy gossip, whatever this
// node's role.
func (r *Router) LazyNetwork() bool { return r.cfg.lazyNetwork() }

// Republish hands gossip a broadcast RainTree delivered: gossip tells this
// node's mesh peers it has it, pushes it to those that do not, and
// advertises it. The handler is not called for it. It does nothing unless
// the router is Lazy, and nothing if gossip already had the message.
func (r *Router) Republish(ctx context.Context, msg *wire.Message) error {
	if !r.cfg.lazy() || r.cfg.Silent {
		return nil
	}
	if err := r.publish(ctx, msg); err != nil {
		r.c.republishErrors.Add(1)
		return fmt.Errorf("republish: %w", err)
	}
	r.c.republished.Add(1)
	return nil
}

// publish puts a message on the topic; pubsub drops it if it has already
// seen it.
func (r *Router) publish(ctx context.Context, msg *wire.Message) error {
	topic, err := r.topicIfStarted()
	if err != nil {
		return err
	}
	frame, err := wire.EncodeBackground(msg.Raw)
	if err != nil {
		return err
	}
	r.catchUp.onPublish(r.gossipID(msg))
	if err := topic.Publish(ctx, frame); err != nil {
		return fmt.Errorf("publishing on %s: %w", r.topicName, err)
	}
	return nil
}
