package sim

import (
	"context"
	"errors"
	"fmt"

	coreconnmgr "github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"

	"github.com/rainp2p/rainp2p/p2p"
)

// mocknetHost is a mocknet host as a node on a real network sees it: it
// can dial any node (the link is made on the first dial), and it runs the
// connection manager a Module's own host would, with the shipped limits.
// Mocknet's hosts have none, so nothing would ever be trimmed.
type mocknetHost struct {
	host.Host
	f  *mocknetFabric
	cm *connmgr.BasicConnMgr
}

func newMocknetHost(h host.Host, f *mocknetFabric) (*mocknetHost, error) {
	cm, err := p2p.NewConnManager(p2p.DefaultConfig().ConnManager)
	if err != nil {
		return nil, err
	}
	h.Network().Notify(cm.Notifee())
	return &mocknetHost{Host: h, f: f, cm: cm}, nil
}

func (h *mocknetHost) ConnManager() coreconnmgr.ConnManager { return h.cm }

// errNotRunning is a dial to a node whose Module has not started.
var errNotRunning = errors.New("mocknet: node not running")

func (h *mocknetHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	if h.Network().Connectedness(pi.ID) == network.Connected {
		return nil
	}
	if !h.f.isUp(pi.ID) {
		return fmt.Errorf("dialing %s: %w", pi.ID, errNotRunning)
	}
	if err := h.f.link(h.ID(), pi.ID); err != nil {
		return err
	}
	return h.Host.Connect(ctx, pi)
}

func (h *mocknetHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if h.Network().Connectedness(p) != network.Connected {
		if !h.f.isUp(p) {
			return nil, fmt.Errorf("dialing %s: %w", p, errNotRunning)
		}
		if err := h.f.link(h.ID(), p); err != nil {
			return nil, err
		}
	}
	return h.Host.NewStream(ctx, p, pids...)
}
