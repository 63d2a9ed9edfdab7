package sim

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// fabric is the network one strategy's run builds its hosts on: libp2p
// mocknet in wall-clock time, or simulated QUIC links in virtual time. The
// run drives it in order: host for each running node, start, connect,
// close.
type fabric interface {
	// host makes node i's host; the fabric owns it and closes it.
	host(i int, n simNode) (host.Host, error)
	// start makes every host reachable, once all exist.
	start() error
	// connect connects the hosts of each pair of nodes.
	connect(ctx context.Context, pairs [][2]int) error
	close() error
}

// mocknetFabric runs hosts on an in-memory libp2p mocknet whose links
// only delay.
type mocknetFabric struct {
	mn    mocknet.Mocknet
	hosts map[int]host.Host
}

func newMocknetFabric(cfg NetConfig) *mocknetFabric {
	mn := mocknet.New()
	mn.SetLinkDefaults(mocknet.LinkOptions{Latency: cfg.Latency})
	return &mocknetFabric{mn: mn, hosts: map[int]host.Host{}}
}

func (f *mocknetFabric) host(i int, n simNode) (host.Host, error) {
	h, err := f.mn.AddPeer(n.key.Private, n.addr)
	if err != nil {
		return nil, fmt.Errorf("adding mocknet peer: %w", err)
	}
	f.hosts[i] = h
	return h, nil
}

func (f *mocknetFabric) start() error {
	if err := f.mn.LinkAll(); err != nil {
		return fmt.Errorf("linking mocknet: %w", err)
	}
	return nil
}

func (f *mocknetFabric) connect(ctx context.Context, pairs [][2]int) error {
	for _, p := range pairs {
		if _, err := f.mn.ConnectPeers(f.hosts[p[0]].ID(), f.hosts[p[1]].ID()); err != nil {
			return fmt.Errorf("connecting nodes %d and %d: %w", p[0], p[1], err)
		}
	}
	return ctx.Err()
}

func (f *mocknetFabric) close() error {
	if err := f.mn.Close(); err != nil {
		return fmt.Errorf("closing mocknet: %w", err)
	}
	return nil
}
