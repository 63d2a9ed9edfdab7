package p2p

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// Resources are the limits of go-libp2p's resource manager on a host the
// Module builds (ignored with Config.Host). Every connection, stream and
// frame buffer is charged to its peer and to the whole node, so no peer,
// and no number of peers, can make the node hold more than these. Limits
// not named here are go-libp2p's defaults scaled to Memory and FD.
type Resources struct {
	// Memory bounds what libp2p reserves in total: frames being read,
	// stream-multiplexer windows, connection buffers. Default 1 GiB.
	Memory int64 `json:"memory,omitempty"`
	// FD bounds the file descriptors (sockets) libp2p holds. Default 4096.
	FD int `json:"fd,omitempty"`
	// ConnsInbound and ConnsOutbound bound connections over all peers.
	// Validators (the set's multiaddrs) are admitted past ConnsInbound
	// through the allowlist. Default 512 and 1024.
	ConnsInbound  int `json:"conns_inbound,omitempty"`
	ConnsOutbound int `json:"conns_outbound,omitempty"`
	// StreamsInbound bounds inbound streams over all peers. Default 8192.
	StreamsInbound int `json:"streams_inbound,omitempty"`
	// PeerMemory bounds what one peer makes us hold. Default 64 MiB.
	PeerMemory int64 `json:"peer_memory,omitempty"`
	// PeerStreamsInbound bounds inbound streams per peer. Default 256.
	PeerStreamsInbound int `json:"peer_streams_inbound,omitempty"`
	// UnicastMemory bounds the frames being read on each unicast protocol
	// (RainTree, background) over all peers, UnicastPeerMemory per peer.
	// A peer that is not a validator may fill 40% of either (the resource
	// manager's low reservation priority), a validator all of it.
	// Default 256 MiB and 32 MiB; UnicastPeerMemory must hold two frames of
	// MaxMessageSize (one arriving, one being copied).
	UnicastMemory     int64 `json:"unicast_memory,omitempty"`
	UnicastPeerMemory int64 `json:"unicast_peer_memory,omitempty"`
	// ConnsPerIP bounds concurrent connections from one IPv4 address or
	// IPv6 /56 (eight times as many per IPv6 /48). Loopback is exempt.
	// Default 8 (go-libp2p's).
	ConnsPerIP int `json:"conns_per_ip,omitempty"`
}

// Defaults used by DefaultResources.
const (
	DefaultResourceMemory      = 1 << 30
	DefaultResourceFD          = 4096
	DefaultConnsInbound        = 512
	DefaultConnsOutbound       = 1024
	DefaultStreamsInbound      = 8192
	DefaultPeerMemory          = 64 << 20
	DefaultPeerStreamsInbound  = 256
	DefaultUnicastMemory       = 256 << 20
	DefaultUnicastPeerMemory   = 32 << 20
	DefaultConnsPerIP          = 8
	unicastChunkAndSmallBuffer = 128 << 10
)

// DefaultResources returns the documented defaults.
func DefaultResources() Resources {
	return Resources{
		Memory:             DefaultResourceMemory,
		FD:                 DefaultResourceFD,
		ConnsInbound:       DefaultConnsInbound,
		ConnsOutbound:      DefaultConnsOutbound,
		StreamsInbound:     DefaultStreamsInbound,
		PeerMemory:         DefaultPeerMemory,
		PeerStreamsInbound: DefaultPeerStreamsInbound,
		UnicastMemory:      DefaultUnicastMemory,
		UnicastPeerMemory:  DefaultUnicastPeerMemory,
		ConnsPerIP:         DefaultConnsPerIP,
	}
}

// WithDefaults returns r with every zero field set to its default, for
// configuration files that name only the limits they change.
func (r Resources) WithDefaults() Resources {
	d := DefaultResources()
	pick := func(v, def int) int {
		if v == 0 {
			return def
		}
		return v
	}
	pick64 := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	return Resources{
		Memory:             pick64(r.Memory, d.Memory),
		FD:                 pick(r.FD, d.FD),
		ConnsInbound:       pick(r.ConnsInbound, d.ConnsInbound),
		ConnsOutbound:      pick(r.ConnsOutbound, d.ConnsOutbound),
		StreamsInbound:     pick(r.StreamsInbound, d.StreamsInbound),
		PeerMemory:         pick64(r.PeerMemory, d.PeerMemory),
		PeerStreamsInbound: pick(r.PeerStreamsInbound, d.PeerStreamsInbound),
		UnicastMemory:      pick64(r.UnicastMemory, d.UnicastMemory),
		UnicastPeerMemory:  pick64(r.UnicastPeerMemory, d.UnicastPeerMemory),
		ConnsPerIP:         pick(r.ConnsPerIP, d.ConnsPerIP),
	}
}

// validate checks r against the largest frame a unicast router accepts.
func (r Resources) validate(maxFrame int) error {
	need := 2*int64(maxFrame) + unicastChunkAndSmallBuffer
	switch {
	case r.Memory <= 0, r.FD <= 0, r.ConnsInbound <= 0, r.ConnsOutbound <= 0, r.StreamsInbound <= 0,
		r.PeerMemory <= 0, r.PeerStreamsInbound <= 0, r.UnicastMemory <= 0, r.UnicastPeerMemory <= 0, r.ConnsPerIP <= 0:
		return fmt.Errorf("every Resources limit must be positive: %+v", r)
	case r.UnicastPeerMemory < need:
		return fmt.Errorf("Resources.UnicastPeerMemory %d cannot hold two frames of %d bytes (need %d)", r.UnicastPeerMemory, maxFrame, need)
	case r.PeerMemory < r.UnicastPeerMemory:
		return fmt.Errorf("Resources.PeerMemory %d is below UnicastPeerMemory %d", r.PeerMemory, r.UnicastPeerMemory)
	case r.UnicastMemory < r.UnicastPeerMemory, r.Memory < r.UnicastMemory:
		return fmt.Errorf("Resources: want UnicastPeerMemory <= UnicastMemory <= Memory, have %d, %d, %d", r.UnicastPeerMemory, r.UnicastMemory, r.Memory)
	}
	return nil
}

// unicastProtocols are the protocols whose frames Resources.Unicast* bound.
func unicastProtocols(networkID string) []protocol.ID {
	return []protocol.ID{raintree.ProtocolID(networkID), background.UnicastProtocolID(networkID)}
}

// limits turns r into the resource manager's limit configuration.
func (r Resources) limits(networkID string, maxFrame int) rcmgr.ConcreteLimitConfig {
	scaled := rcmgr.DefaultLimits
	// Fresh maps, so adding to them leaves the package default alone.
	scaled.ServiceLimits, scaled.ServicePeerLimits = nil, nil
	scaled.ProtocolLimits, scaled.ProtocolPeerLimits, scaled.PeerLimits = nil, nil, nil
	libp2p.SetDefaultServiceLimits(&scaled)
	base := scaled.Scale(r.Memory, r.FD)
	v := func(n int) rcmgr.LimitVal { return rcmgr.LimitVal(n) }
	v64 := func(n int64) rcmgr.LimitVal64 { return rcmgr.LimitVal64(n) }
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Memory: v64(r.Memory), FD: v(r.FD),
			ConnsInbound: v(r.ConnsInbound), ConnsOutbound: v(r.ConnsOutbound), Conns: v(r.ConnsInbound + r.ConnsOutbound),
			StreamsInbound: v(r.StreamsInbound),
		},
		PeerDefault: rcmgr.ResourceLimits{Memory: v64(r.PeerMemory), StreamsInbound: v(r.PeerStreamsInbound)},
		// A stream holds at most one frame arriving and one being copied,
		// reserved at low priority for peers outside the set.
		Stream:       rcmgr.ResourceLimits{Memory: v64(max(16<<20, lowPriority(2*int64(maxFrame)+unicastChunkAndSmallBuffer)))},
		Protocol:     map[protocol.ID]rcmgr.ResourceLimits{},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{},
	}
	for _, p := range unicastProtocols(networkID) {
		partial.Protocol[p] = rcmgr.ResourceLimits{Memory: v64(r.UnicastMemory)}
		partial.ProtocolPeer[p] = rcmgr.ResourceLimits{Memory: v64(r.UnicastPeerMemory)}
	}
	return partial.Build(base)
}

// lowPriority is the limit under which a low-priority reservation (a
// peer outside the set: unicast.Config.Trusted) of n bytes fits: the
// resource manager grants those only up to (1+ReservationPriorityLow)/256
// of a limit, about 40%.
func lowPriority(n int64) int64 {
	const share = 1 + int64(network.ReservationPriorityLow)
	return (n*256 + share - 1) / share
}

// newResourceManager builds the resource manager for r, reporting its
// refusals to c.
func newResourceManager(r Resources, networkID string, maxFrame int, c *rcmgrCounters) (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(r.limits(networkID, maxFrame)),
		rcmgr.WithMetrics(c),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: r.ConnsPerIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: r.ConnsPerIP}, {PrefixLength: 48, ConnCount: 8 * r.ConnsPerIP}},
		),
	)
}

// allowlist keeps the resource manager's allowlist equal to the validator
// set's multiaddrs (each bound to its peer ID), so validators are admitted
// past the inbound limits that throwaway peers can fill. Being admitted is
// not being kept: the connection manager decides that.
type allowlist struct {
	mu  sync.Mutex
	al  *rcmgr.Allowlist
	cur map[string]ma.Multiaddr
}

func newAllowlist(rm network.ResourceManager) *allowlist {
	al := rcmgr.GetAllowlist(rm)
	if al == nil {
		return nil
	}
	return &allowlist{al: al, cur: map[string]ma.Multiaddr{}}
}

// update replaces the allowlisted addresses with set's, skipping self.
func (a *allowlist) update(set *validators.Set, self peer.ID) {
	if a == nil {
		return
	}
	want := map[string]ma.Multiaddr{}
	for _, v := range set.Validators() {
		if v.PeerID == self {
			continue
		}
		p2p, err := ma.NewComponent("p2p", v.PeerID.String())
		if err != nil {
			continue
		}
		for _, addr := range v.Multiaddrs {
			if full := addr.Encapsulate(p2p.Multiaddr()); full != nil {
				want[full.String()] = full
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, m := range a.cur {
		if _, ok := want[k]; !ok {
			_ = a.al.Remove(m)
			delete(a.cur, k)
		}
	}
	for k, m := range want {
		if _, ok := a.cur[k]; ok {
			continue
		}
		if err := a.al.Add(m); err == nil { // addresses without an IP (dns) cannot be allowlisted
			a.cur[k] = m
		}
	}
}

// size is how many multiaddrs are allowlisted.
func (a *allowlist) size() int {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cur)
}

// rcmgrCounters counts the resource manager's refusals; it is its
// MetricsReporter.
type rcmgrCounters struct {
	blockedConns, blockedStreams, blockedPeers, blockedProtocols, blockedMemory atomic.Uint64
	blockedServices                                                             atomic.Uint64
}

func (c *rcmgrCounters) AllowConn(network.Direction, bool)      {}
func (c *rcmgrCounters) BlockConn(network.Direction, bool)      { c.blockedConns.Add(1) }
func (c *rcmgrCounters) AllowStream(peer.ID, network.Direction) {}
func (c *rcmgrCounters) BlockStream(peer.ID, network.Direction) { c.blockedStreams.Add(1) }
func (c *rcmgrCounters) AllowPeer(peer.ID)                      {}
func (c *rcmgrCounters) BlockPeer(peer.ID)                      { c.blockedPeers.Add(1) }
func (c *rcmgrCounters) AllowProtocol(protocol.ID)              {}
func (c *rcmgrCounters) BlockProtocol(protocol.ID)              { c.blockedProtocols.Add(1) }
func (c *rcmgrCounters) BlockProtocolPeer(protocol.ID, peer.ID) { c.blockedProtocols.Add(1) }
func (c *rcmgrCounters) AllowService(string)                    {}
func (c *rcmgrCounters) BlockService(string)                    { c.blockedServices.Add(1) }
func (c *rcmgrCounters) BlockServicePeer(string, peer.ID)       { c.blockedServices.Add(1) }
func (c *rcmgrCounters) AllowMemory(int)                        {}
func (c *rcmgrCounters) BlockMemory(int)                        { c.blockedMemory.Add(1) }

var _ rcmgr.MetricsReporter = (*rcmgrCounters)(nil)

// ResourceStats is a snapshot of the resource manager: what it holds now
// and how often it refused.
type ResourceStats struct {
	// Memory is reserved bytes: System over everything, Transient for
	// connections and streams not yet attached to a peer or protocol,
	// Unicast for frames being read on the unicast protocols.
	SystemMemory, TransientMemory, UnicastMemory int64
	ConnsInbound, ConnsOutbound                  int
	StreamsInbound, StreamsOutbound              int
	// Blocked* count refusals by kind.
	BlockedConns, BlockedStreams, BlockedPeers, BlockedProtocols, BlockedMemory uint64
	// BlockedServices counts streams refused at a service's limits
	// (libp2p's own services: identify, ping, ...).
	BlockedServices uint64
	// Allowlisted is how many validator multiaddrs are allowlisted.
	Allowlisted int
}

// unicastUsage sums the memory the resource manager holds on the unicast
// protocols of networkID.
func unicastUsage(rm network.ResourceManager, networkID string) int64 {
	var total int64
	for _, p := range unicastProtocols(networkID) {
		_ = rm.ViewProtocol(p, func(s network.ProtocolScope) error {
			total += s.Stat().Memory
			return nil
		})
	}
	return total
}

// resourceStats reads rm's scopes and c's counters.
func resourceStats(rm network.ResourceManager, networkID string, c *rcmgrCounters, al *allowlist) ResourceStats {
	var s ResourceStats
	if rm == nil {
		return s
	}
	_ = rm.ViewSystem(func(sc network.ResourceScope) error {
		st := sc.Stat()
		s.SystemMemory = st.Memory
		s.ConnsInbound, s.ConnsOutbound = st.NumConnsInbound, st.NumConnsOutbound
		s.StreamsInbound, s.StreamsOutbound = st.NumStreamsInbound, st.NumStreamsOutbound
		return nil
	})
	_ = rm.ViewTransient(func(sc network.ResourceScope) error {
		s.TransientMemory = sc.Stat().Memory
		return nil
	})
	s.UnicastMemory = unicastUsage(rm, networkID)
	if c != nil {
		s.BlockedConns, s.BlockedStreams = c.blockedConns.Load(), c.blockedStreams.Load()
		s.BlockedPeers, s.BlockedProtocols = c.blockedPeers.Load(), c.blockedProtocols.Load()
		s.BlockedMemory, s.BlockedServices = c.blockedMemory.Load(), c.blockedServices.Load()
	}
	s.Allowlisted = al.size()
	return s
}
