package raintree

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Defaults used by DefaultConfig.
const (
	DefaultACKTimeout    = 2 * time.Second
	DefaultForwardSlack  = 100 * time.Millisecond
	DefaultForwardFactor = 2.0
	DefaultLaggardTTL    = 10 * time.Minute
	DefaultMaxRetries    = 3
	DefaultRecentSets    = 4
	DefaultRecentSetTTL  = 2 * time.Minute
	DefaultSeenCacheSize = dedup.DefaultCapacity
	DefaultSendTimeout   = 10 * time.Second
	// DefaultSlowSendFactor and DefaultSlowSendMin are Config.SlowSendFactor's
	// and Config.SlowSendMin's defaults.
	DefaultSlowSendFactor = 8.0
	DefaultSlowSendMin    = time.Second
	// DefaultHopHold is Config.HopHold's default.
	DefaultHopHold = 100 * time.Millisecond

	DefaultWorkers            = 4
	DefaultInboundQueueLen    = 256
	DefaultInboundQueueBytes  = 64 << 20
	DefaultOutboundQueueLen   = 256
	DefaultOutboundQueueBytes = 128 << 20
	DefaultDeliveryQueueLen   = 1024
	DefaultDeliveryQueueBytes = 64 << 20
	DefaultACKQueueLen        = 1024
	DefaultACKQueuePerPeer    = 64
	DefaultPaceBytes          = 64 << 10
	DefaultLevelsPerHop       = 2
	DefaultWideMaxValidators  = 729
	DefaultSkipDisconnected   = time.Second
	// MaxLevelsPerHop bounds LevelsPerHop: a hop fans out to up to
	// 3^LevelsPerHop-1 validators, and each is a neighbour to keep.
	MaxLevelsPerHop = 4
)

// ProtocolID is the libp2p protocol the RainTree router speaks on a network.
func ProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/raintree/1.0.0")
}

// ACKProtocolID is the libp2p protocol RainTree ACKs travel on, apart from
// payload frames so they never wait behind one.
func ACKProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/raintree/ack/1.0.0")
}

// ProofProtocolID is the libp2p protocol proofs of forwarding travel on
// (forwarded.go). A node of an older version has no handler for it, so it
// neither receives proofs nor is sent any it would take for garbage.
func ProofProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/raintree/proof/1.0.0")
}

// Config configures a Router. Start from DefaultConfig: Validate rejects
// zero limits rather than silently substituting defaults.
type Config struct {
	// NetworkID names the network; it is part of the protocol ID.
	NetworkID string
	// Mode is the planning rule this node plans with, for the broadcasts it
	// originates and for the frames it forwards; the mode written in a
	// frame is ignored. Every validator of a network should use the same.
	// Default ModeCover.
	Mode Mode
	// ACK makes receivers acknowledge every tree frame and senders
	// re-delegate a target's span (see Redelegate) to the next validator
	// when no ACK arrives within ACKTimeout or the send fails. Only cover
	// frames carry a span, so reference targets are never re-delegated.
	// Default true.
	ACK bool
	// CheckForwarding makes a sender, with ACK on, also wait for the proof
	// that a head it handed a span of others to forwarded it: a receipt
	// signed by one of the head's own targets (forwarded.go), for paced
	// frames. A head that acknowledged but sends no valid proof within
	// ForwardFactor times the time from the frame's send to its ACK, plus
	// ForwardSlack, or that sends an invalid one, loses the rest of the
	// span to the next validator, as after a missing ACK
	// (Stats.NotForwarded). Default true.
	CheckForwarding bool
	// LaggardTTL is how long a head that failed to prove it forwarded a
	// paced frame of ours stays a laggard: while it does, this node hands
	// it paced frames of itself alone and the rest of their span to the
	// next validator at once (Stats.SkippedLaggards), instead of waiting
	// for a proof that has not come before; a valid proof from it ends it
	// early. 0 turns it off. Default 10 min.
	LaggardTTL time.Duration
	// ForwardFactor scales the wait for a proof of forwarding after the
	// ACK by the time from the frame's send to that ACK: an honest head
	// forwards a frame of the same size and two more links pass (its
	// target's ACK, the proof), so a head with our uplink needs about 1;
	// what is above 1 is room for a head with a slower uplink, or one
	// busy with another block. Too low, and honest heads lose their spans
	// (the block reaches those twice; at 1 validators received about 0.2
	// more copies of a block); too high, and a head that sits on a block
	// costs its span that much longer. Between 1.25 and 2 the simulator
	// saw no difference beyond run-to-run noise (ADR 0002), so the
	// default keeps the room. At least 1; default 2.
	ForwardFactor float64
	// ForwardSlack is added to the wait for a proof of forwarding: on fast
	// links the send-to-ACK time is tiny and a busy head's scheduling sets
	// the pace. Too short, and a slow honest head loses its span (the
	// block then reaches it twice); too long, and a head that sits on a
	// block costs its span that much more. Default 100 ms.
	ForwardSlack time.Duration
	// ACKTimeout is how long a sender waits for an ACK, counted from when
	// the transport took the frame (a dial does not eat into it).
	// Default 2s.
	ACKTimeout time.Duration
	// MaxRetries bounds re-delegations per original target; 0 disables
	// them (unlike Options.MaxRetries, where 0 means unbounded). Default 3.
	MaxRetries int
	// Redundancy makes the originator also send the payload at level 0 to
	// every other validator; level-0 frames are neither acknowledged nor
	// propagated. Default false.
	Redundancy bool
	// Silent injects a fault: the node receives, delivers and acknowledges
	// but never forwards.
	Silent bool
	// MaxMessageSize bounds a serialized envelope in bytes. Default
	// wire.DefaultMaxMessageSize.
	MaxMessageSize int
	// RecentSets is how many replaced validator sets are kept, by hash, so
	// broadcasts planned on them still propagate. Default 4.
	RecentSets int
	// RecentSetTTL is the grace period of a replaced set: for this long
	// after a node moves to a new set, frames tagged with the old set's
	// hash are still accepted and forwarded on the old plan, so nodes that
	// reach a new height a little apart keep one tree. After it (or once
	// RecentSets newer sets replaced it) such frames count as an unknown
	// set: delivered if a current validator sent them, never forwarded.
	// 0 keeps replaced sets until RecentSets pushes them out. Default 2m.
	RecentSetTTL time.Duration
	// SeenCacheSize bounds the memory of (message, span) pairs (cover) or
	// (message, level) pairs (reference) already handled, so a frame is
	// forwarded at most once; see package dedup for how it forgets.
	// Default 65536, like the Module's DedupCapacity.
	SeenCacheSize int
	// ReplayWindow and ClockSkew bound the creation time of a broadcast
	// this router accepts (see package dedup). The Module sets them from
	// its own. Defaults dedup.DefaultWindow and dedup.DefaultSkew.
	ReplayWindow, ClockSkew time.Duration
	// OnInvalid, if set, is told about every frame only a faulty or
	// hostile peer sends: malformed, badly signed (a relay altered or
	// forged the envelope), misdirected (a unicast envelope replayed). It
	// must not block. The Module counts these as penalties.
	OnInvalid func(from peer.ID, err error)
	// SendTimeout bounds one frame's send, dial included. Default 10s.
	SendTimeout time.Duration
	// SlowSendFactor and SlowSendMin bound a paced frame's send by this
	// node's own pace: it may take SlowSendFactor times as long per byte
	// as the median of this node's last paced frames took from their send
	// to their ACK, or SlowSendMin if that is longer, and never more than
	// SendTimeout. A head that
	// reads a block far slower than the others (a hostile validator can
	// choose spans that make it one) holds the uplink, which sends one
	// paced frame at a time, that long at most instead of SendTimeout; its
	// span then goes on without it, and it is a laggard (LaggardTTL),
	// counted in Stats.SlowHeads. An honest head slowed by other copies
	// arriving at once took up to four times the usual in the simulator
	// (ADR 0002). 0 turns it off. Defaults 8 and 1s.
	SlowSendFactor float64
	SlowSendMin    time.Duration
	// HopHold bounds how long a node holds back the frames of its next
	// hop in a broadcast while this hop's frames to connected targets are
	// being written (a hop at a time, so the frames with the most levels
	// to run share the uplink with fewer others; frames that need a dial
	// hold nothing back): a target that stalls its stream delays the
	// next hop by at most this much. Default 100ms, far more than a hop
	// of small frames takes to write at a few Mbit/s.
	HopHold time.Duration
	// Workers is how many goroutines verify, acknowledge, forward and
	// deliver inbound payload frames. Default 4.
	Workers int
	// InboundQueueLen bounds the payload frames waiting for a worker per
	// sending validator, and InboundQueueBytes their bytes over all
	// senders; frames beyond either are dropped (Dropped.InboundFull), so
	// the sender re-delegates. Defaults 256 and 64 MiB (at least one
	// frame of MaxMessageSize).
	InboundQueueLen, InboundQueueBytes int
	// OutboundQueueLen bounds the frames waiting to be sent to one
	// validator (and those in the uplink queue, see PaceBytes), and
	// OutboundQueueBytes their envelope bytes over all queues (a message
	// queued for two targets counts twice); a frame beyond either is
	// dropped (Dropped.OutboundFull) and, if it is a tree frame,
	// re-delegated. Defaults 256 and 128 MiB.
	OutboundQueueLen, OutboundQueueBytes int
	// PaceBytes is the envelope size from which tree frames leave one at a
	// time, biggest subtree first, instead of all at once (uplink.go): for
	// such frames bandwidth, not latency, sets the pace. At most
	// OutboundQueueLen of them wait. Default 64 KiB, about one round trip
	// of a 20 Mbit/s uplink; 0 sends every frame at once.
	PaceBytes int
	// LevelsPerHop is how many ternary levels one hop of a cover-mode
	// broadcast runs for envelopes below PaceBytes (see CoverTargets):
	// 2 makes each hop fan out to up to 8 validators and halves the
	// hops, which is what sets the latency of small messages. Envelopes
	// of PaceBytes and more always go one level per hop, since for them
	// each copy costs uplink time and a node's copies leave one after
	// another. Every validator should use the same value, though mixing
	// them stays correct. Between 1 and MaxLevelsPerHop; default 2.
	LevelsPerHop int
	// WideMaxValidators is the largest validator set LevelsPerHop applies
	// to; larger sets run one level per hop. Wider hops mean more RainTree
	// neighbours to keep connected: with 2 levels per hop a validator has
	// at most 58 up to 729 validators (3^6), but 70 at 1,000 and 82 at
	// 3,000, above the connection manager's HighWater of 64. Default 729.
	WideMaxValidators int
	// DeliveryQueueLen and DeliveryQueueBytes bound accepted messages
	// waiting for the handler; one beyond either is not delivered by
	// RainTree (Dropped.DeliveryFull), but was acknowledged and forwarded,
	// and gossip still brings it. Defaults 1024 and 64 MiB.
	DeliveryQueueLen, DeliveryQueueBytes int
	// ACKQueueLen bounds ACKs (and proofs of forwarding) waiting to be
	// sent, ACKQueuePerPeer those to one validator, each validator's sent
	// in order by a goroutine of its own (ackqueue.go); one beyond either
	// is dropped (Dropped.ACKQueueFull) and its sender re-delegates.
	// Defaults 1024 and 64.
	ACKQueueLen, ACKQueuePerPeer int
	// Unicast configures the framed stream transport. Its ProtocolID must
	// be ProtocolID(NetworkID) and its MaxMessageSize must leave room for
	// MaxMessageSize plus wire.FrameOverhead.
	Unicast unicast.Config
	// SkipDisconnectedAfter: with ACK on, a tree frame to one of this
	// node's RainTree targets (its neighbours, which the Module keeps
	// connected) that has no connection once the node has held the set
	// this long is re-delegated at once instead of dialled (Stats.
	// SkippedDisconnected): a dial to a validator that is down can take
	// the transport's whole handshake timeout, and the span waits for it.
	// A target that was only between connections gets the message from
	// gossip. Default 1s, time enough to connect to the neighbours of a
	// new set; 0 always dials. Set it only where something keeps the
	// neighbours connected: the Module turns it off without a background
	// router, whose dialer does that.
	SkipDisconnectedAfter time.Duration
	// OnTreeSent, if set, is called when this node is done sending the
	// tree frames of a message one receipt (an origination, a frame, a
	// handover) called for: for small messages once its last hop is
	// written, or HopHold after that hop began when a frame to a
	// connected target is still being written (a target that stalls its
	// stream delays it by HopHold, not SendTimeout; a frame waiting on a
	// dial holds nothing), at once when it called for none;
	// for paced ones (see PaceBytes) when none waits in the uplink queue
	// any more. It runs on a router goroutine (a sender, a worker, a
	// timer) or the caller's of Broadcast, Relay or RelayParts, so it
	// must return quickly; a second receipt of the message (another
	// span, a resent handover, a level-0 copy) or a re-delegated paced
	// frame can make it run again for the same message.
	OnTreeSent func(msg *wire.Message)
	// Clock drives ACK timeouts. nil means real time.
	Clock Clock
	// Logger receives drop and retry events. nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a complete Config for networkID.
func DefaultConfig(networkID string) Config {
	u := unicast.DefaultConfig(ProtocolID(networkID))
	u.MaxMessageSize = wire.DefaultMaxMessageSize + wire.FrameOverhead
	return Config{
		NetworkID:             networkID,
		Mode:                  ModeCover,
		ACK:                   true,
		CheckForwarding:       true,
		ForwardSlack:          DefaultForwardSlack,
		ForwardFactor:         DefaultForwardFactor,
		LaggardTTL:            DefaultLaggardTTL,
		ACKTimeout:            DefaultACKTimeout,
		MaxRetries:            DefaultMaxRetries,
		MaxMessageSize:        wire.DefaultMaxMessageSize,
		RecentSets:            DefaultRecentSets,
		RecentSetTTL:          DefaultRecentSetTTL,
		SeenCacheSize:         DefaultSeenCacheSize,
		ReplayWindow:          dedup.DefaultWindow,
		ClockSkew:             dedup.DefaultSkew,
		SendTimeout:           DefaultSendTimeout,
		SlowSendFactor:        DefaultSlowSendFactor,
		SlowSendMin:           DefaultSlowSendMin,
		HopHold:               DefaultHopHold,
		Workers:               DefaultWorkers,
		InboundQueueLen:       DefaultInboundQueueLen,
		InboundQueueBytes:     DefaultInboundQueueBytes,
		OutboundQueueLen:      DefaultOutboundQueueLen,
		OutboundQueueBytes:    DefaultOutboundQueueBytes,
		DeliveryQueueLen:      DefaultDeliveryQueueLen,
		DeliveryQueueBytes:    DefaultDeliveryQueueBytes,
		ACKQueueLen:           DefaultACKQueueLen,
		ACKQueuePerPeer:       DefaultACKQueuePerPeer,
		PaceBytes:             DefaultPaceBytes,
		LevelsPerHop:          DefaultLevelsPerHop,
		WideMaxValidators:     DefaultWideMaxValidators,
		SkipDisconnectedAfter: DefaultSkipDisconnected,
		Unicast:               u,
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.NetworkID == "":
		return errors.New("raintree: NetworkID is empty")
	case c.Mode != ModeCover && c.Mode != ModeReference:
		return fmt.Errorf("raintree: %w: %q", ErrUnknownMode, c.Mode)
	case c.ACK && c.ACKTimeout <= 0:
		return fmt.Errorf("raintree: ACKTimeout %v must be positive", c.ACKTimeout)
	case c.MaxRetries < 0:
		return fmt.Errorf("raintree: MaxRetries %d must not be negative", c.MaxRetries)
	case c.MaxMessageSize <= 0:
		return fmt.Errorf("raintree: MaxMessageSize %d must be positive", c.MaxMessageSize)
	case c.RecentSets < 0:
		return fmt.Errorf("raintree: RecentSets %d must not be negative", c.RecentSets)
	case c.RecentSetTTL < 0:
		return fmt.Errorf("raintree: RecentSetTTL %v must not be negative", c.RecentSetTTL)
	case c.SeenCacheSize <= 0:
		return fmt.Errorf("raintree: SeenCacheSize %d must be positive", c.SeenCacheSize)
	case c.HopHold <= 0:
		return fmt.Errorf("raintree: HopHold %v must be positive", c.HopHold)
	case c.SendTimeout <= 0:
		return fmt.Errorf("raintree: SendTimeout %v must be positive", c.SendTimeout)
	case !(c.SlowSendFactor == 0 || c.SlowSendFactor >= 1) || c.SlowSendMin < 0:
		return fmt.Errorf("raintree: SlowSendFactor %v must be 0 (off) or at least 1, and SlowSendMin %v not negative", c.SlowSendFactor, c.SlowSendMin)
	case c.Workers <= 0 || c.InboundQueueLen <= 0 || c.OutboundQueueLen <= 0 || c.DeliveryQueueLen <= 0 || c.ACKQueueLen <= 0 || c.ACKQueuePerPeer <= 0:
		return fmt.Errorf("raintree: Workers %d and queue lengths (inbound %d, outbound %d, delivery %d, ACK %d, ACK per peer %d) must be positive",
			c.Workers, c.InboundQueueLen, c.OutboundQueueLen, c.DeliveryQueueLen, c.ACKQueueLen, c.ACKQueuePerPeer)
	case c.PaceBytes < 0:
		return fmt.Errorf("raintree: PaceBytes %d must not be negative", c.PaceBytes)
	case c.LevelsPerHop < 1 || c.LevelsPerHop > MaxLevelsPerHop:
		return fmt.Errorf("raintree: LevelsPerHop %d must be between 1 and %d", c.LevelsPerHop, MaxLevelsPerHop)
	case c.SkipDisconnectedAfter < 0:
		return fmt.Errorf("raintree: SkipDisconnectedAfter %v must not be negative", c.SkipDisconnectedAfter)
	case c.LaggardTTL < 0:
		return fmt.Errorf("raintree: LaggardTTL %v must not be negative", c.LaggardTTL)
	case !(c.ForwardFactor >= 1):
		return fmt.Errorf("raintree: ForwardFactor %v must be at least 1: an honest head needs one transfer time to forward", c.ForwardFactor)
	case c.ForwardSlack < 0:
		return fmt.Errorf("raintree: ForwardSlack %v must not be negative", c.ForwardSlack)
	case c.WideMaxValidators < 0:
		return fmt.Errorf("raintree: WideMaxValidators %d must not be negative", c.WideMaxValidators)
	case c.InboundQueueBytes < c.MaxMessageSize+wire.FrameOverhead || c.OutboundQueueBytes < c.MaxMessageSize || c.DeliveryQueueBytes < c.MaxMessageSize:
		return fmt.Errorf("raintree: InboundQueueBytes %d, OutboundQueueBytes %d and DeliveryQueueBytes %d must each hold a message of MaxMessageSize %d",
			c.InboundQueueBytes, c.OutboundQueueBytes, c.DeliveryQueueBytes, c.MaxMessageSize)
	case c.ReplayWindow <= 0 || c.ClockSkew < 0:
		return fmt.Errorf("raintree: ReplayWindow %v must be positive and ClockSkew %v not negative", c.ReplayWindow, c.ClockSkew)
	case c.Unicast.ProtocolID != ProtocolID(c.NetworkID):
		return fmt.Errorf("raintree: Unicast.ProtocolID %q, want %q", c.Unicast.ProtocolID, ProtocolID(c.NetworkID))
	case c.Unicast.MaxMessageSize < c.MaxMessageSize+wire.FrameOverhead:
		return fmt.Errorf("raintree: Unicast.MaxMessageSize %d is below MaxMessageSize %d + wire.FrameOverhead",
			c.Unicast.MaxMessageSize, c.MaxMessageSize)
	}
	if err := c.Unicast.Validate(); err != nil {
		return fmt.Errorf("raintree: %w", err)
	}
	return nil
}

// Paces reports whether tree frames of an envelope of size bytes are
// paced: they leave one at a time through the uplink queue and go one
// level per hop (see PaceBytes).
func (c Config) Paces(size int) bool { return c.PaceBytes > 0 && size >= c.PaceBytes }

// LevelsPerHopFor is how many tree levels one hop runs for an envelope of
// size bytes over a set of n validators: LevelsPerHop for small envelopes
// in sets up to WideMaxValidators, one otherwise.
func (c Config) LevelsPerHopFor(n, size int) int {
	if n > c.WideMaxValidators || c.Paces(size) {
		return 1
	}
	return c.LevelsPerHop
}

// PerHops lists the levels per hop this configuration broadcasts with over
// n validators, for NeighboursOf.
func (c Config) PerHops(n int) []int {
	if n > c.WideMaxValidators || c.LevelsPerHop == 1 {
		return []int{1}
	}
	return []int{1, c.LevelsPerHop}
}

// Clock is the time source for ACK timeouts; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc call.
type Timer interface {
	// Stop prevents the call if it has not started, and reports whether it
	// did so.
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
