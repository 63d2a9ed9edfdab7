package background

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// protectTag keeps the connections of SetValidatorPeers' peers out of
	// the connection manager's trimming.
	protectTag = "rainp2p-background-bootstrap"
	// bootstrapTag ranks configured bootstrap peers above other
	// unprotected peers when the connection manager trims: they are
	// tagged, not protected, so a well-known bootstrap node is not held
	// by everyone who ever joined through it.
	bootstrapTag    = "rainp2p-bootstrap"
	bootstrapWeight = 20
	// dialTimeout bounds one connection attempt.
	dialTimeout = 10 * time.Second
	// Bootstrap redials back off from minBackoff to maxBackoff, with
	// jitter so a restarted network does not dial in lockstep.
	minBackoff = 200 * time.Millisecond
	maxBackoff = 30 * time.Second
	// discoveryTimeout bounds one advertise-and-find round.
	discoveryTimeout = 30 * time.Second
)

var errEmptyRoutingTable = errors.New("DHT routing table is empty")

// AddBootstrapPeers adds peers to join through, like Config.BootstrapPeers:
// each is dialed, with backoff, until it answers once, and redialed when
// the node has fewer topic peers than the mesh's lower bound (Dlo). Unknown
// addresses are merged; dialing starts at once if the Router is running.
// For peers derived from the validator set, which changes, use
// SetValidatorPeers.
func (r *Router) AddBootstrapPeers(ps []peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == stateClosed {
		return
	}
	r.addBootstrapLocked(ps, r.static)
	r.dialAllLocked(ps)
}

// SetValidatorPeers replaces the peers derived from the validator set that
// this node keeps connected (a validator's RainTree targets; a few
// validators for a node without bootstrap peers) with ps: they are
// protected in the connection manager, dialed with backoff and redialed
// whenever the connection drops, and peers of an earlier call that are
// missing from ps are dropped. A dropped peer's
// redial loop stops, its connection loses the connection manager's
// protection, and its addresses get peerstore.RecentlyConnectedAddrTTL
// instead of a permanent one. Peers from Config.BootstrapPeers or
// AddBootstrapPeers stay regardless.
func (r *Router) SetValidatorPeers(ps []peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == stateClosed {
		return
	}
	old := r.validators
	r.validators = make(map[peer.ID]struct{}, len(ps))
	r.addBootstrapLocked(ps, r.validators)
	for id := range old {
		if _, ok := r.validators[id]; !ok {
			r.dropValidatorLocked(id)
		}
	}
	r.dialAllLocked(ps)
}

// dropValidatorLocked unprotects a peer that left the validator peers and
// forgets it, unless it is also a static bootstrap peer. r.mu must be held.
func (r *Router) dropValidatorLocked(id peer.ID) {
	r.host.ConnManager().Unprotect(id, protectTag)
	if _, ok := r.static[id]; ok {
		return
	}
	delete(r.bootstrap, id)
	if d := r.dialing[id]; d != nil {
		d.cancel()
		delete(r.dialing, id)
	}
	r.host.Peerstore().UpdateAddrs(id, peerstore.PermanentAddrTTL, peerstore.RecentlyConnectedAddrTTL)
}

// addBootstrapLocked merges ps into the bootstrap peers and records each
// in set (r.static or r.validators). r.mu must be held.
func (r *Router) addBootstrapLocked(ps []peer.AddrInfo, set map[peer.ID]struct{}) {
	for _, ai := range ps {
		if ai.ID == "" || ai.ID == r.host.ID() {
			continue
		}
		set[ai.ID] = struct{}{}
		cur := r.bootstrap[ai.ID]
		cur.ID = ai.ID
		cur.Addrs = ma.Unique(append(cur.Addrs, ai.Addrs...))
		r.bootstrap[ai.ID] = cur
		r.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		if _, static := r.static[ai.ID]; static {
			r.host.ConnManager().TagPeer(ai.ID, bootstrapTag, bootstrapWeight)
		}
		if _, keep := r.validators[ai.ID]; keep {
			r.host.ConnManager().Protect(ai.ID, protectTag)
		}
	}
}

// dialAllLocked starts dialers for the bootstrap peers among ps if the
// Router is running. r.mu must be held.
func (r *Router) dialAllLocked(ps []peer.AddrInfo) {
	if r.state != stateStarted {
		return
	}
	for _, ai := range ps {
		if _, ok := r.bootstrap[ai.ID]; ok {
			r.dialLocked(ai.ID)
		}
	}
}

// dialer is one bootstrap peer's redial loop.
type dialer struct {
	cancel context.CancelFunc
}

// dialLocked starts a dialer for a bootstrap peer unless one is running or
// the peer is connected. r.mu must be held and the Router started.
func (r *Router) dialLocked(id peer.ID) {
	if r.dialing[id] != nil || r.host.Network().Connectedness(id) == network.Connected {
		return
	}
	ctx, cancel := context.WithCancel(r.ctx)
	d := &dialer{cancel: cancel}
	r.dialing[id] = d
	r.dialers.Add(1)
	r.wg.Go(func() {
		defer r.dialers.Add(-1)
		defer cancel()
		defer func() {
			r.mu.Lock()
			// A dropped and re-added peer may have a newer dialer.
			if r.dialing[id] == d {
				delete(r.dialing, id)
			}
			r.mu.Unlock()
		}()
		r.dialBootstrap(ctx, id)
	})
}

// dialBootstrap connects to a bootstrap peer, retrying with backoff until
// it succeeds, the peer is dropped from bootstrap (ctx is cancelled) or
// the Router closes.
func (r *Router) dialBootstrap(ctx context.Context, id peer.ID) {
	backoff := minBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if r.host.Network().Connectedness(id) == network.Connected {
			r.kickDiscovery()
			return
		}
		r.mu.Lock()
		ai, ok := r.bootstrap[id]
		r.mu.Unlock()
		if !ok {
			return
		}
		// The swarm keeps its own per-address dial backoff (5s and up,
		// growing quadratically), which would override ours and leave a
		// restarted bootstrap peer unreached for minutes. This loop is
		// already rate-limited, so it bypasses the swarm's.
		dctx, dcancel := context.WithTimeout(network.WithForceDirectDial(ctx, "rainp2p bootstrap redial"), dialTimeout)
		err := r.host.Connect(dctx, ai)
		dcancel()
		if err == nil {
			r.log.Debug("connected to bootstrap peer", "peer", id)
			r.kickDiscovery()
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.c.bootstrapDialErrors.Add(1)
		r.log.Debug("dialing bootstrap peer", "peer", id, "err", err, "retry_in", backoff)
		timer.Reset(jitter(backoff))
		backoff = min(2*backoff, maxBackoff)
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func (r *Router) kickDiscovery() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// maintainLoop redials lost bootstrap peers and, with the DHT, advertises
// this node under the topic name and connects to other advertisers. It
// runs every AdvertiseInterval; after a failed round (typically an empty
// routing table right after start) it retries sooner, with backoff, and a
// fresh bootstrap connection triggers a round at once.
func (r *Router) maintainLoop() {
	var disc *drouting.RoutingDiscovery
	if r.dht != nil {
		disc = drouting.NewRoutingDiscovery(r.dht)
	}
	retry := minBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		case <-r.kick:
		}
		joining := r.underConnected()
		r.mu.Lock()
		for id := range r.bootstrap {
			if _, keep := r.validators[id]; keep || joining {
				r.dialLocked(id)
			}
		}
		r.mu.Unlock()

		next := r.cfg.AdvertiseInterval
		if disc != nil {
			if err := r.discover(disc); err != nil {
				if r.ctx.Err() != nil {
					return
				}
				r.c.discoveryErrors.Add(1)
				r.log.Debug("discovery round failed", "err", err, "retry_in", retry)
				next = min(retry, next)
				retry = min(2*retry, r.cfg.AdvertiseInterval)
			} else {
				retry = minBackoff
			}
		}
		timer.Reset(next)
	}
}

// underConnected reports whether the node has fewer topic peers than the
// mesh's lower bound, so it should dial its bootstrap peers again.
func (r *Router) underConnected() bool {
	return len(r.TopicPeers()) < max(r.cfg.Gossip.Dlo, 1)
}

// IsMeshPeer reports whether p is in this node's gossipsub mesh: pubsub
// protects mesh peers in the connection manager under the topic's tag.
// It is always false without a connection manager or with another
// pubsub kind.
func (r *Router) IsMeshPeer(p peer.ID) bool {
	return r.host.ConnManager().IsProtected(p, "pubsub:"+r.topicName)
}

// targetPeers is how many topic peers discovery dials towards: twice the
// mesh's upper bound, so the mesh has candidates to replace slow peers
// without the node connecting to the whole network.
func (r *Router) targetPeers() int {
	return 2 * max(r.cfg.Gossip.Dhi, DefaultGossipParams().Dhi)
}

// discover runs one advertise-and-find round on the DHT.
func (r *Router) discover(disc *drouting.RoutingDiscovery) error {
	if r.dht.RoutingTable().Size() == 0 {
		return errEmptyRoutingTable
	}
	ctx, cancel := context.WithTimeout(r.ctx, discoveryTimeout)
	defer cancel()
	if _, err := disc.Advertise(ctx, r.topicName); err != nil {
		return fmt.Errorf("advertising %s: %w", r.topicName, err)
	}
	found, err := disc.FindPeers(ctx, r.topicName)
	if err != nil {
		return fmt.Errorf("finding peers for %s: %w", r.topicName, err)
	}
	want := r.targetPeers() - len(r.TopicPeers())
	var wg sync.WaitGroup
	for ai := range found {
		if want <= 0 {
			break
		}
		if ai.ID == r.host.ID() || len(ai.Addrs) == 0 || r.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		want--
		wg.Go(func() {
			cctx, ccancel := context.WithTimeout(ctx, dialTimeout)
			defer ccancel()
			if err := r.host.Connect(cctx, ai); err != nil {
				r.c.discoveredDialErrors.Add(1)
				r.log.Debug("dialing discovered peer", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}
