package sim

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"
)

// Time bases of a Result: what its durations were measured in.
const (
	// TimeWall is the wall clock of a mocknet run: every node shares this
	// machine's CPU, so timings grow with load, not only with links.
	TimeWall TimeBase = "wall"
	// TimeVirtual is the synctest clock of a simnet run: it advances only
	// while every goroutine waits, so timings come from the links alone.
	TimeVirtual TimeBase = "virtual"
)

// Virtual-mode defaults.
const (
	// DefaultBandwidth is each node's uplink and downlink in bits per
	// second.
	DefaultBandwidth = 20_000_000
	// DefaultVirtualBroadcastTimeout bounds the wait for one broadcast in
	// virtual time: a megabyte flooded over 20 Mbit/s uplinks takes tens
	// of seconds. A quiet network ends the wait sooner.
	DefaultVirtualBroadcastTimeout = 120 * time.Second
	// simnetPort is the UDP port of every simulated node, as x/simlibp2p
	// uses it.
	simnetPort = 8000
)

// VirtualLinks turns RunNetwork into a virtual-time run: every node is a
// real libp2p host speaking QUIC over go-libp2p's x/simlibp2p simulated
// network (github.com/marcopolo/simnet), which delays each packet by its
// link latency and queues it behind the sender's uplink and the receiver's
// downlink. RunNetwork must then be called inside a testing/synctest bubble,
// where time advances only while every goroutine is blocked, so timings do
// not depend on the CPU; TestVirtualSim is the entry point.
type VirtualLinks struct {
	// LatencyMax, when above NetConfig.Latency, makes each pair of nodes'
	// one-way latency a draw, fixed per pair by the seed, uniform in
	// [Latency, LatencyMax]. Otherwise every link has NetConfig.Latency.
	LatencyMax time.Duration
	// UplinkBPS and DownlinkBPS are every node's bandwidth in bits per
	// second. Default DefaultBandwidth.
	UplinkBPS, DownlinkBPS int
}

func (v *VirtualLinks) validate(latency time.Duration) error {
	switch {
	case v.LatencyMax < 0:
		return fmt.Errorf("%w: maximum latency must not be negative, got %v", ErrBadConfig, v.LatencyMax)
	case v.LatencyMax > 0 && v.LatencyMax < latency:
		return fmt.Errorf("%w: maximum latency %v is below the latency %v", ErrBadConfig, v.LatencyMax, latency)
	case v.UplinkBPS < 0 || v.DownlinkBPS < 0:
		return fmt.Errorf("%w: bandwidth must not be negative", ErrBadConfig)
	}
	return nil
}

func (v VirtualLinks) withDefaults() VirtualLinks {
	if v.UplinkBPS == 0 {
		v.UplinkBPS = DefaultBandwidth
	}
	if v.DownlinkBPS == 0 {
		v.DownlinkBPS = DefaultBandwidth
	}
	return v
}

// simnetAddr is node i's listen address on the simulated network.
func simnetAddr(i int) (ma.Multiaddr, error) {
	return ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", simnet.IntToPublicIPv4(i), simnetPort))
}

// pairLatency gives each unordered pair of nodes a one-way latency, fixed by
// the seed.
type pairLatency struct {
	min, spread time.Duration
	key         uint64
	node        map[[4]byte]int
}

func newPairLatency(cfg NetConfig, nodes int) *pairLatency {
	l := &pairLatency{min: cfg.Latency, key: cfg.Seed, node: make(map[[4]byte]int, nodes)}
	if cfg.Virtual.LatencyMax > cfg.Latency {
		l.spread = cfg.Virtual.LatencyMax - cfg.Latency
	}
	for i := range nodes {
		l.node[[4]byte(simnet.IntToPublicIPv4(i).To4())] = i
	}
	return l
}

// of is the latency between nodes a and b.
func (l *pairLatency) of(a, b int) time.Duration {
	if l.spread == 0 {
		return l.min
	}
	lo, hi := uint64(min(a, b)), uint64(max(a, b))
	// splitmix64 of (seed, pair): the same draw for the same seed in
	// every run, without a table of n² entries.
	x := l.key ^ (lo<<32 | hi) ^ 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return l.min + time.Duration(x%uint64(l.spread+1))
}

// packet is the simnet latency function.
func (l *pairLatency) packet(p *simnet.Packet) time.Duration {
	from, okFrom := l.index(p.From)
	to, okTo := l.index(p.To)
	if !okFrom || !okTo {
		return l.min
	}
	return l.of(from, to)
}

func (l *pairLatency) index(a net.Addr) (int, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok || u.IP.To4() == nil {
		return 0, false
	}
	i, ok := l.node[[4]byte(u.IP.To4())]
	return i, ok
}

// newVirtualFabric makes a virtual-time network. Only the test binary
// sets it: virtual time needs a synctest bubble, which needs a
// *testing.T, and x/simlibp2p links package testing into whatever uses it.
var newVirtualFabric func(NetConfig, *pairLatency) fabric

// ErrVirtualOutsideTest is returned for a virtual-time run outside the
// sim package's test binary.
var ErrVirtualOutsideTest = errors.New("virtual time runs only inside a testing/synctest bubble: " +
	"use go test ./sim -run '^TestVirtualSim$' -args ...")
