package p2p

import (
	"hash/fnv"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// NeighbourTag is the connection manager protection tag of a validator's
// RainTree neighbours.
const NeighbourTag = "rainp2p-raintree-neighbour"

// updateNeighboursLocked protects this node's RainTree neighbours in set
// (none unless isValidator), unprotects former ones, and returns the peers
// to keep connected: a validator dials its targets (its senders dial it),
// a node without bootstrap peers a few validators so it can join at all.
// m.mu must be held.
func (m *Module) updateNeighboursLocked(set *validators.Set, isValidator bool) []peer.AddrInfo {
	next := map[peer.ID]struct{}{}
	var keep []peer.AddrInfo
	switch self, ok := set.IndexOf(m.cfg.Key.Address); {
	case isValidator && ok:
		nb := raintree.NeighboursOf(m.cfg.RainTree.Mode, set.Len(), self, m.cfg.RainTree.PerHops(set.Len())...)
		for _, i := range nb.All() {
			next[set.At(i).PeerID] = struct{}{}
		}
		for _, i := range nb.Targets {
			keep = append(keep, set.At(i).AddrInfo())
		}
	default:
		if len(m.cfg.Background.BootstrapPeers) == 0 {
			keep = joinPeers(set, m.host.ID(), m.cfg.FullNodeValidatorPeers)
		}
	}
	cm := m.host.ConnManager()
	for id := range next {
		cm.Protect(id, NeighbourTag)
	}
	for id := range m.neighbours {
		if _, ok := next[id]; !ok {
			cm.Unprotect(id, NeighbourTag)
		}
	}
	m.neighbours = next
	return keep
}

// joinPeers picks k validators of set, other than self, starting at a
// position drawn from self's ID: every node picks the same ones each time,
// and different nodes spread over the set.
func joinPeers(set *validators.Set, self peer.ID, k int) []peer.AddrInfo {
	n := set.Len()
	if n == 0 || k == 0 {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(self))
	start := int(h.Sum64() % uint64(n))
	var out []peer.AddrInfo
	for i := 0; i < n && len(out) < k; i++ {
		if v := set.At((start + i) % n); v.PeerID != self {
			out = append(out, v.AddrInfo())
		}
	}
	return out
}

// isNeighbour reports whether p is one of this node's RainTree neighbours.
// m.mu must be held.
func (m *Module) isNeighbourLocked(p peer.ID) bool {
	_, ok := m.neighbours[p]
	return ok
}

// Connection kinds in Status.Connections and the rainp2p_connections metric.
const (
	ConnRainTreeNeighbour = "raintree_neighbour"
	ConnMesh              = "mesh"
	ConnOther             = "other"
)

// connectionsLocked counts connected peers by kind. m.mu must be held.
func (m *Module) connectionsLocked() map[string]int {
	c := map[string]int{ConnRainTreeNeighbour: 0, ConnMesh: 0, ConnOther: 0}
	if m.host == nil || m.closed {
		return c
	}
	for _, p := range m.host.Network().Peers() {
		switch {
		case m.isNeighbourLocked(p):
			c[ConnRainTreeNeighbour]++
		case m.bg != nil && m.bg.IsMeshPeer(p):
			c[ConnMesh]++
		default:
			c[ConnOther]++
		}
	}
	return c
}
