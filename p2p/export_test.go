package p2p

import "github.com/libp2p/go-libp2p/core/peer"

// HandoverHeads lists the validators the full node m hands a small
// broadcast to (submit), in the order it sends to them.
func HandoverHeads(m *Module) []peer.ID {
	m.mu.RLock()
	bg := m.bg
	m.mu.RUnlock()
	set := m.ValidatorSet()
	var ids []peer.ID
	for _, t := range m.handoverTargets(bg, set, 1) {
		ids = append(ids, set.At(t.Index).PeerID)
	}
	return ids
}
