package p2p

import (
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

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

// HopsAfter is how many RainTree hops after validator from the full node
// m expects the last validator to get msg (background.Config.HopsAfter).
func HopsAfter(m *Module, msg *wire.Message, from peer.ID) (int, bool) { return m.hopsAfter(msg, from) }

// BookLen is how many connected peers' addresses m remembers.
func BookLen(m *Module) int {
	m.bookMu.Lock()
	defer m.bookMu.Unlock()
	return len(m.book)
}

// ResourceLimits is the resource manager's limit configuration for r.
func ResourceLimits(r Resources, networkID string, maxFrame int) rcmgr.ConcreteLimitConfig {
	return r.limits(networkID, maxFrame)
}

// CloseWhile is Close that runs during once it holds the module's lock,
// before it stops the routers, handing it the background router.
func CloseWhile(m *Module, during func(bg *background.Router)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	during(m.bg)
	m.closed = true
	return m.stopLocked()
}
