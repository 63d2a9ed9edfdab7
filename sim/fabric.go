package sim

import (
	"context"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
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
// only delay. Links are made when a pair first dials (see mocknetHost),
// not for every pair up front, which would cost O(n²) memory.
type mocknetFabric struct {
	mn    mocknet.Mocknet
	hosts map[int]host.Host

	// linked remembers the pairs that have a link, so the many repeated
	// dials of a big run skip linkMu, which only serialises making one.
	linked sync.Map // [2]peer.ID, lower first -> struct{}
	linkMu sync.Mutex
	cms    []*connmgr.BasicConnMgr
	// up holds the peer IDs of nodes whose Module has started: dialing
	// any other fails, as dialing a node that is not running yet would.
	// Otherwise a node's pubsub could reach a peer before that peer's
	// pubsub exists and, through a race in pubsub's new-peer handling,
	// never count it as a topic peer.
	up sync.Map
}

// nodeStarted makes node i dialable.
func (f *mocknetFabric) nodeStarted(i int) { f.up.Store(f.hosts[i].ID(), true) }

func (f *mocknetFabric) isUp(p peer.ID) bool {
	_, ok := f.up.Load(p)
	return ok
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
	// A host from libp2p.New answers pings (full nodes measure round trips
	// to their validators with them); mocknet's does not by itself.
	ping.NewPingService(h)
	mh, err := newMocknetHost(h, f)
	if err != nil {
		return nil, err
	}
	f.cms = append(f.cms, mh.cm)
	f.hosts[i] = mh
	return mh, nil
}

func (f *mocknetFabric) start() error { return nil }

func (f *mocknetFabric) connect(ctx context.Context, pairs [][2]int) error {
	for _, p := range pairs {
		if err := f.link(f.hosts[p[0]].ID(), f.hosts[p[1]].ID()); err != nil {
			return err
		}
		if _, err := f.mn.ConnectPeers(f.hosts[p[0]].ID(), f.hosts[p[1]].ID()); err != nil {
			return fmt.Errorf("connecting nodes %d and %d: %w", p[0], p[1], err)
		}
	}
	return ctx.Err()
}

func (f *mocknetFabric) close() error {
	err := f.mn.Close()
	for _, cm := range f.cms {
		_ = cm.Close()
	}
	if err != nil {
		return fmt.Errorf("closing mocknet: %w", err)
	}
	return nil
}

// link makes sure a and b have a mocknet link, the medium a dial needs.
func (f *mocknetFabric) link(a, b peer.ID) error {
	key := [2]peer.ID{min(a, b), max(a, b)}
	if _, ok := f.linked.Load(key); ok {
		return nil
	}
	f.linkMu.Lock()
	defer f.linkMu.Unlock()
	if _, ok := f.linked.Load(key); ok {
		return nil
	}
	if _, err := f.mn.LinkPeers(a, b); err != nil {
		return fmt.Errorf("linking %s and %s: %w", a, b, err)
	}
	f.linked.Store(key, struct{}{})
	return nil
}

// allDown makes every node undialable, as a network being shut down is:
// redials of nodes whose Module has closed then fail at once instead of
// connecting to a host that is still there.
func (f *mocknetFabric) allDown() { f.up.Clear() }
