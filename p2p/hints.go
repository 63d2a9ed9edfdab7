package p2p

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// hintTTL is how long a validator's addresses from the set stay in the
// peerstore after a dial needed them.
const hintTTL = time.Hour

// hintedHost is the host the routers get: before a dial to a validator
// whose addresses the peerstore lacks, it copies them from the set in
// force. Copying every validator's addresses on each set change would cost
// every node memory in proportion to the set (about 270 bytes a validator
// in go-libp2p's memory peerstore), for peers it mostly never dials.
type hintedHost struct {
	host.Host
	m *Module
}

func (h hintedHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	h.hint(pi.ID)
	return h.Host.Connect(ctx, pi)
}

func (h hintedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	h.hint(p)
	return h.Host.NewStream(ctx, p, pids...)
}

func (h hintedHost) hint(p peer.ID) {
	if h.Network().Connectedness(p) == network.Connected || len(h.Peerstore().Addrs(p)) > 0 {
		return
	}
	set := h.m.trusted.Load()
	if i, ok := set.IndexOfPeer(p); ok {
		if addrs := set.At(i).Multiaddrs; len(addrs) > 0 {
			h.Peerstore().AddAddrs(p, addrs, hintTTL)
		}
	}
}
