package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Defaults used by DefaultConfig.
const (
	DefaultNetworkID      = "rainp2p-localnet"
	DefaultDeliveryBuffer = 1024
	// DefaultFullNodeValidatorPeers is Config.FullNodeValidatorPeers'.
	DefaultFullNodeValidatorPeers = 4
	// DefaultHandoverRedial is Config.HandoverRedial's default.
	DefaultHandoverRedial = time.Minute
)

// DefaultListenAddrs listen on every interface, TCP and QUIC, on ports the
// system picks.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// Config configures a Module. Start from DefaultConfig, set Key and
// Validators, and adjust what you need; New validates it.
type Config struct {
	// NetworkID separates networks: topic names and protocol IDs include it.
	NetworkID string
	// Key is this node's identity. Required.
	Key *identity.Key
	// ListenAddrs are the multiaddrs the host listens on (ignored with Host).
	ListenAddrs []string
	// AnnounceAddrs, when set, are the only addresses the host advertises
	// to peers (identify, DHT, peer records), instead of its listen
	// addresses: set them to the node's public addresses when it listens
	// on 0.0.0.0 or sits behind NAT, for example "/ip4/203.0.113.7/tcp/4001".
	// No /p2p/ part. Default none: libp2p's own choice. Ignored with Host.
	AnnounceAddrs []string
	// Host, when set, is used instead of creating one (for example a mocknet
	// host); the Module does not close it. Its identity must be Key's.
	Host host.Host
	// Validators supplies the validator set; the Module asks it for Height
	// at start-up and the application pushes changes with UpdateValidators.
	// Required.
	Validators validators.Provider
	// Height is the height whose validator set is loaded at start-up.
	Height uint64
	// MaxMessageSize bounds a serialized envelope, on every router.
	// Default 4 MiB.
	MaxMessageSize int
	// DedupCapacity is how many message IDs the deduper remembers. Size it
	// with ReplayWindow: it should hold every message of ReplayWindow +
	// 2*ClockSkew. Past it, the origin holding the most IDs loses its
	// oldest, and everything that origin created at or before them is
	// refused as too old (package dedup). Default 65536 (about 470 messages
	// a second over the default window; ~11 MiB, 35 MiB at worst).
	DedupCapacity int
	// ReplayWindow is how long after its creation an envelope is still
	// accepted; older ones are refused and counted. Default 2m.
	ReplayWindow time.Duration
	// ClockSkew is the clock difference allowed between an originator and
	// a receiver, in both directions: an envelope is accepted if created
	// in [now - ReplayWindow - ClockSkew, now + ClockSkew]. Default 10s.
	ClockSkew time.Duration
	// OnInvalidPeer, if set, is told about every peer a router caught
	// sending what only a faulty or hostile peer sends (a RainTree relay
	// that altered or forged a signed envelope, a malformed frame). It
	// must not block. Each call is counted in Stats.InvalidPeers.
	OnInvalidPeer func(router RouterName, from peer.ID, err error)
	// DeliveryBuffer is the capacity of the Deliveries channel. Default
	// 1024. When it is full, routers wait: RainTree and unicast senders are
	// slowed through stream flow control, while gossip backs up into
	// pubsub's subscription buffer (Background.SubscriptionBuffer), which
	// drops once full; such drops are counted as subscription_full.
	DeliveryBuffer int
	// Routers selects which routers run. The default, RoutersBoth, is the
	// design; the others exist to measure one router alone (rainp2p sim).
	Routers RouterSet
	// Silent is fault injection for tests and localnet: the node receives
	// but never forwards on any router.
	Silent bool
	// ConnManager sizes the connection manager of a host the Module
	// creates (ignored with Host).
	ConnManager ConnManagerConfig
	// FullNodeValidatorPeers is how many validators of the set a node
	// that is not a RainTree validator keeps connected when it has no
	// Background.BootstrapPeers, so it can join at all; chosen from its
	// own peer ID, so full nodes spread over the set. The set's other
	// addresses are only address hints. Default 4.
	FullNodeValidatorPeers int
	// HandoverRedial is how often at most a full node dials one of the
	// validators it hands its broadcasts to (background.GossipParams'
	// SubmitInParts) when it has no connection to it: once when it takes
	// a validator set on, and again only when a broadcast found the
	// validator unconnected (its share then went through the parent).
	// There is no redial loop, so validators that trim full nodes'
	// connections are not dialled back in a cycle. Default 1 min.
	HandoverRedial time.Duration
	// RainTree configures the RainTree router (validators only).
	RainTree raintree.Config
	// Background configures the gossip router every node runs.
	Background background.Config
	// Resources are the resource manager's limits on a host the Module
	// builds (ignored with Host). See Resources and docs/SECURITY.md.
	Resources Resources
	// PrometheusRegisterer receives go-libp2p's own metrics (resource
	// manager, swarm, identify) for a host the Module builds. nil means
	// go-libp2p's default, prometheus.DefaultRegisterer.
	PrometheusRegisterer prometheus.Registerer
	// Logger receives the module's logs. nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a complete configuration apart from Key and
// Validators.
func DefaultConfig() Config {
	return Config{
		NetworkID:      DefaultNetworkID,
		ListenAddrs:    append([]string(nil), DefaultListenAddrs...),
		MaxMessageSize: wire.DefaultMaxMessageSize,
		DedupCapacity:  dedup.DefaultCapacity,
		ReplayWindow:   dedup.DefaultWindow,
		ClockSkew:      dedup.DefaultSkew,
		DeliveryBuffer: DefaultDeliveryBuffer,
		ConnManager:    DefaultConnManagerConfig(),

		FullNodeValidatorPeers: DefaultFullNodeValidatorPeers,
		HandoverRedial:         DefaultHandoverRedial,
		RainTree:               raintree.DefaultConfig(DefaultNetworkID),
		Background:             background.DefaultConfig(DefaultNetworkID),
		Resources:              DefaultResources(),
	}
}

// RouterSet selects which routers a Module runs.
type RouterSet int

// The router sets.
const (
	RoutersBoth RouterSet = iota
	RoutersRainTreeOnly
	RoutersBackgroundOnly
)

// ErrInvalidConfig wraps every configuration error.
var ErrInvalidConfig = errors.New("invalid p2p config")

// Validate reports the first problem with c.
func (c Config) Validate() error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.NetworkID == "":
		return fail("NetworkID is empty")
	case c.Key == nil:
		return fail("Key is required")
	case c.Validators == nil:
		return fail("Validators provider is required")
	case c.Host == nil && len(c.ListenAddrs) == 0:
		return fail("no ListenAddrs and no Host")
	case c.Host != nil && c.Host.ID() != c.Key.PeerID:
		return fail("Host identity %s is not Key's %s", c.Host.ID(), c.Key.PeerID)
	case c.MaxMessageSize <= 0:
		return fail("MaxMessageSize %d must be positive", c.MaxMessageSize)
	case c.DedupCapacity <= 0:
		return fail("DedupCapacity %d must be positive", c.DedupCapacity)
	case c.ReplayWindow <= 0:
		return fail("ReplayWindow %v must be positive", c.ReplayWindow)
	case c.ClockSkew < 0:
		return fail("ClockSkew %v must not be negative", c.ClockSkew)
	case c.Routers < RoutersBoth || c.Routers > RoutersBackgroundOnly:
		return fail("unknown Routers value %d", c.Routers)
	case c.DeliveryBuffer < 0:
		return fail("DeliveryBuffer %d must not be negative", c.DeliveryBuffer)
	case c.FullNodeValidatorPeers < 0:
		return fail("FullNodeValidatorPeers %d must not be negative", c.FullNodeValidatorPeers)
	case c.HandoverRedial <= 0:
		return fail("HandoverRedial %v must be positive", c.HandoverRedial)
	}
	if c.Host == nil {
		if err := c.ConnManager.validate(); err != nil {
			return fail("%w", err)
		}
	}
	if c.Host == nil {
		if err := c.Resources.validate(c.MaxMessageSize + wire.FrameOverhead); err != nil {
			return fail("%w", err)
		}
	}
	if _, err := parseAnnounce(c.AnnounceAddrs); err != nil {
		return fail("%v", err)
	}
	return nil
}

// routerConfigs derives the routers' configurations from c: network ID,
// message size and silence are set once, at the module level.
func (c Config) routerConfigs() (raintree.Config, background.Config, error) {
	rt, bg := c.RainTree, c.Background
	rt.NetworkID, bg.NetworkID = c.NetworkID, c.NetworkID
	rt.Unicast.ProtocolID = raintree.ProtocolID(c.NetworkID)
	bg.Unicast.ProtocolID = background.UnicastProtocolID(c.NetworkID)
	rt.Unicast.MaxMessageSize = c.MaxMessageSize + wire.FrameOverhead
	bg.Unicast.MaxMessageSize = c.MaxMessageSize + wire.FrameOverhead
	rt.MaxMessageSize, bg.MaxMessageSize = c.MaxMessageSize, c.MaxMessageSize
	rt.ReplayWindow, bg.ReplayWindow = c.ReplayWindow, c.ReplayWindow
	rt.ClockSkew, bg.ClockSkew = c.ClockSkew, c.ClockSkew
	rt.Silent, bg.Silent = rt.Silent || c.Silent, bg.Silent || c.Silent
	// A started block is proven with the receipts in cover mode's ACKs of
	// paced frames, so RainTree must pace every block a full node asks
	// about (LargeBytes and more).
	bg.ProvesSubmissions = c.Routers == RoutersBoth && rt.ACK && rt.Mode == raintree.ModeCover &&
		rt.Paces(bg.Gossip.LargeBytes)
	if c.Routers != RoutersBoth {
		// Lazy gossip leans on RainTree to carry the payload to validators.
		bg.Gossip.LazyAmongValidators = false
		// Only the background router keeps RainTree neighbours connected;
		// without it a neighbour with no connection is the normal case.
		rt.SkipDisconnectedAfter = 0
	}
	if rt.Logger == nil {
		rt.Logger = c.Logger
	}
	if bg.Logger == nil {
		bg.Logger = c.Logger
	}
	if rt.Unicast.Logger == nil {
		rt.Unicast.Logger = c.Logger
	}
	if bg.Unicast.Logger == nil {
		bg.Unicast.Logger = c.Logger
	}
	if err := rt.Validate(); err != nil {
		return rt, bg, fmt.Errorf("%w: raintree: %w", ErrInvalidConfig, err)
	}
	if err := bg.Validate(); err != nil {
		return rt, bg, fmt.Errorf("%w: background: %w", ErrInvalidConfig, err)
	}
	return rt, bg, nil
}
