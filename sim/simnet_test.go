package sim

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/simlibp2p"
	"github.com/marcopolo/simnet"

	"github.com/rainp2p/rainp2p/p2p"
)

func init() {
	newVirtualFabric = func(cfg NetConfig, lat *pairLatency) fabric { return newSimnetFabric(cfg, lat) }
}

// simnetFabric runs real QUIC hosts on a simulated network.
type simnetFabric struct {
	nw    *simnet.Simnet
	links simnet.NodeBiDiLinkSettings
	mu    sync.Mutex
	hosts map[int]host.Host
}

func newSimnetFabric(cfg NetConfig, lat *pairLatency) *simnetFabric {
	v := cfg.Virtual.withDefaults()
	return &simnetFabric{
		// Packets to down validators have nowhere to go; the Simnet
		// would log each one.
		nw: &simnet.Simnet{LatencyFunc: lat.packet, Logger: slog.New(slog.DiscardHandler)},
		links: simnet.NodeBiDiLinkSettings{
			Uplink:   simnet.LinkSettings{BitsPerSecond: v.UplinkBPS},
			Downlink: simnet.LinkSettings{BitsPerSecond: v.DownlinkBPS},
		},
		hosts: map[int]host.Host{},
	}
}

func (f *simnetFabric) host(i int, n simNode) (host.Host, error) {
	// The connection manager a node runs with (p2p.DefaultConfig), so
	// trimming plays its part as in a deployment.
	cm, err := p2p.NewConnManager(p2p.DefaultConfig().ConnManager)
	if err != nil {
		return nil, err
	}
	h, err := libp2p.New(
		libp2p.ConnectionManager(cm), // the host closes it
		libp2p.Identity(n.key.Private),
		libp2p.ListenAddrs(n.addr),
		simlibp2p.QUICSimnet(f.nw, f.links),
		// Identify's address discovery stalls a synctest bubble
		// (x/simlibp2p says so and does the same).
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		// Metrics collectors are process-wide; hosts of one bubble must
		// not share state with the next bubble's.
		libp2p.DisableMetrics(),
	)
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("creating simnet host %d: %w", i, err)
	}
	f.mu.Lock()
	f.hosts[i] = h
	f.mu.Unlock()
	return h, nil
}

func (f *simnetFabric) start() error {
	f.nw.Start()
	return nil
}

// connectParallel bounds concurrent dials; each waits a few round trips
// of virtual time.
const connectParallel = 64

func (f *simnetFabric) connect(ctx context.Context, pairs [][2]int) error {
	sem := make(chan struct{}, connectParallel)
	errs := make(chan error, len(pairs))
	var wg sync.WaitGroup
	for _, p := range pairs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a, b := f.hosts[p[0]], f.hosts[p[1]]
			if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
				errs <- fmt.Errorf("connecting nodes %d and %d: %w", p[0], p[1], err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when there was none
}

func (f *simnetFabric) close() error {
	var first error
	for _, h := range f.hosts {
		if err := h.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing simnet host: %w", err)
		}
	}
	f.nw.Close()
	return first
}
