package background

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// PubSubKind selects the pubsub router behind the topic.
type PubSubKind string

// The supported pubsub routers.
const (
	// GossipSub keeps a bounded mesh per topic and repairs gaps with
	// IHAVE/IWANT gossip. It is the default and the only one meant for
	// production.
	GossipSub PubSubKind = "gossipsub"
	// RandomSub forwards each message to a random subset of topic peers
	// sized from Config.RandomSubSize. It has no repair path; it exists for
	// comparison runs.
	RandomSub PubSubKind = "randomsub"
	// FloodSub forwards each message to every topic peer: maximal
	// redundancy, maximal bandwidth.
	FloodSub PubSubKind = "floodsub"
)

// ParsePubSubKind parses a pubsub kind name; the empty string means GossipSub.
func ParsePubSubKind(s string) (PubSubKind, error) {
	switch k := PubSubKind(strings.ToLower(strings.TrimSpace(s))); k {
	case "":
		return GossipSub, nil
	case GossipSub, RandomSub, FloodSub:
		return k, nil
	default:
		return "", fmt.Errorf("unknown pubsub kind %q: want %s, %s or %s", s, GossipSub, RandomSub, FloodSub)
	}
}

// GossipParams are the gossipsub knobs we expose. Everything else keeps
// pubsub's DefaultGossipSubParams.
type GossipParams struct {
	// D is the target mesh degree; Dlo and Dhi bound it before the
	// heartbeat grafts or prunes. Default 6/5/12, pubsub's: each mesh
	// link costs about one copy of every message, and RainTree already
	// carries the payload to validators (ADR 0002). Lazy validators use
	// ValidatorD instead.
	D, Dlo, Dhi int
	// Dlazy is how many non-mesh peers receive IHAVE gossip per heartbeat.
	// Default 6 (pubsub's and Ethereum's).
	Dlazy int
	// HeartbeatInterval paces mesh maintenance and gossip emission.
	// Default 700ms (Ethereum): quicker mesh repair than pubsub's 1s for a
	// few control messages per peer per tick.
	HeartbeatInterval time.Duration
	// HistoryLength is how many heartbeats a message stays in the cache to
	// answer IWANT; HistoryGossip how many of those are advertised in IHAVE.
	// Default 6/3 (Ethereum): about 4s of repair window at 700ms.
	HistoryLength, HistoryGossip int
	// FloodPublish sends our own publications to every topic peer, not just
	// the mesh. Default true (go-libp2p-pubsub has it off): every topic
	// peer gets the message in one hop, which keeps coverage time short
	// and, in small networks, independent of how the mesh happened to
	// form. Without it a publish right after start-up still arrives: a
	// peer that joins our mesh is offered (IHAVE) what we published in the
	// gossip window (catchup.go). Lazy validators never flood-publish.
	FloodPublish bool
	// LazyAmongValidators lets RainTree carry the payload to validators
	// and keeps gossip for the full nodes and for repair (lazy.go): a
	// validator scores other validators below zero so its mesh holds only
	// full nodes, meshes at ValidatorD and never flood-publishes; it
	// republishes whatever RainTree delivers to it; a full node hands its
	// own broadcasts to a parent validator (submit.go) and forwards gossip
	// ForwardDelay late (forward.go). Full nodes see plain gossipsub on the
	// wire. Default true: about 0.38x stock gossipsub's payload bytes at
	// 100 nodes with delivery 1.0 (ADR 0002); false runs validators as
	// eager gossipsub peers too, about 1.0x.
	LazyAmongValidators bool
	// ValidatorD is the mesh degree a lazy validator aims for (Dlo is one
	// less); ValidatorDhi the most mesh peers it keeps, pruning the full
	// nodes that graft it beyond that. Its mesh holds only full nodes
	// (lazy.go). Every mesh peer may push a block the validator still
	// awaits from RainTree, and those copies share its downlink with the
	// tree: measured at 100 nodes with 30% of validators silent, 12 mesh
	// peers gave 3.4–4.0 validator copies of a 1 MiB block and met the
	// 8.5 s coverage target in 7 of 19 runs, 4 gave 2.9–3.2 copies and
	// met it in 6 of 7; but with 4 (or fewer) full nodes find fewer
	// validators to mesh with, and small messages reached them 40% later
	// (full-node p99 64 against 45 ms at 100 nodes; unchanged at 300).
	// Since full nodes keep the validators that graft them (keptScore),
	// a validator's mesh only shrinks when it prunes it itself, so its cap
	// is what bounds it: 5 keeps a block's full-node p99 within 1.5x the
	// validators' healthy and with 30% silent (1.71x in one run with 10%
	// down; 1.50-1.62x healthy with 12), small messages as quick as with
	// 12, and, with 30% of validators silent, about 0.2 fewer copies per
	// validator than 6 on a loaded network. 4 saves more copies still,
	// but leaves some full nodes without a validator in their mesh (small
	// messages a link or two later; a block's full-node p99 up to 1.64x
	// the validators' in one run of nine), ADR 0002. Defaults 2, the
	// smallest gossipsub allows, and 5.
	ValidatorD, ValidatorDhi int
	// ForwardDelay and MaxForwardDelay bound how long a full node of a
	// lazy network holds a message before gossip forwards it (forward.go):
	// the time for the IDONTWANTs of the validators in its mesh to arrive,
	// so that a link carries a copy only to a validator that needs it. The
	// hold ends soon after they all have spoken (release.go); otherwise it
	// lasts a link (half a round trip, as measured by ping, rtt.go) for
	// every RainTree hop the broadcast has left after the validator that
	// sent it, and a round trip more (HopsAfter), or two round trips when
	// that is unknown, between the two bounds. It delays nothing but
	// forwarding: the application gets the message at once. Too short
	// costs copies (a fixed 30ms on 20ms links: 1.65 payload copies per
	// validator instead of 1.02; a link of slack instead of a round trip:
	// 0.50-0.56 instead of 0.45-0.50 times stock gossipsub's payload in
	// rainp2p sim with 30% of validators silent), too long the repair of
	// silent validators' subtrees (ADR 0002). A ForwardDelay of 0 forwards
	// at once. Defaults 20ms, for the moments before a round trip is known
	// and for links of a few milliseconds (the measured round trips decide
	// beyond that: 20 to 40ms at 10ms links, 40 to 80ms at 20ms), and 1s,
	// below how long pubsub remembers an IDONTWANT (3 heartbeats);
	// MaxForwardDelay equal to ForwardDelay fixes the delay.
	ForwardDelay, MaxForwardDelay time.Duration
	// LargeBytes and LargeForwardDelay: a message of at least LargeBytes
	// waits LargeForwardDelay instead. A large message spreads through
	// RainTree over seconds, one uplink-bound copy after another, so
	// validators announce it (IDONTWANT) over seconds too, and a copy a
	// full node forwards to one that gets it from RainTree soon after costs
	// a whole block of its downlink. Defaults 64 KiB (RainTree's
	// PaceBytes) and 1.5s, below IDONTWANT's lifetime (2.1s at the default
	// heartbeat): with 500ms full nodes lagged validators by up to 1.64x
	// at 1 MiB (ADR 0002).
	LargeBytes        int
	LargeForwardDelay time.Duration
	// LargeWriteHold, under lazy gossip, makes this node's gossip writes
	// of at least LargeBytes leave one at a time (uplink.go): each waits
	// for the one before to be written, or to have run LargeWriteHold
	// (and at most LargeWriteHold in all, then goes beside the others;
	// a write held for a busy peer, BusyHold, may wait for it again),
	// and when its turn comes it leaves out the messages the peer has
	// said (IDONTWANT) it has. Pubsub checks IDONTWANT only when it
	// queues a copy, and queues a block to every mesh peer at once: the
	// copies then shared the uplink, none arrived for seconds, so none
	// could be declined. 0 writes as pubsub does. Default 2s, about five
	// times a megabyte's time at 20 Mbit/s; a write that takes longer (a
	// slow or hostile reader, or one whose downlink many copies share)
	// lets the next one start beside it. With it, at 100 nodes and 1 MiB,
	// validators received about 1.5 payload copies of a block instead of
	// 2.6-2.9 and full nodes about 4 instead of 6.3-7.1, and the
	// validators' p99 fell from 4.6-4.9 s to about 4.0 s; with 1s the full
	// nodes' p99 was 0.6 s later on average over five seeds, with 3s no
	// better (ADR 0002, ninth session).
	LargeWriteHold time.Duration
	// UnwantedMemory bounds the (peer, message) pairs remembered from
	// the peers' IDONTWANTs for LargeWriteHold. Past it the least recently
	// used is forgotten and counted (Stats.UnwantedForgotten); a copy to
	// that peer is then written anyway. Default 8192 (about 1.5 MB).
	UnwantedMemory int
	// AskHold, under lazy gossip with LargeWriteHold (ignored without
	// it), leaves the IWANTs out of this node's RPCs while a frame of at
	// least LargeBytes arrives from a validator on a gossip or RainTree
	// stream (anyone else could hold them back with padding), for at most
	// AskHold after it began, and after its first 250ms only while it is
	// on track to be whole within AskHold and arrives at AskMinRate bytes
	// a second or more; a validator's frames count at most once every two
	// AskHolds. Pubsub asks every peer that advertises a message it has
	// not yet seen whole, so a node receiving a block asked for it once a
	// heartbeat, each answer another copy on its downlink and a turn of
	// the answering peer's uplink (asks.go). 0 asks as pubsub does.
	// Defaults 3s, pubsub's IWANT follow-up time, after which it counts
	// an unanswered IWANT against the advertiser: a block held for is
	// whole by then. And 128 KiB/s. At 100 nodes and 1 MiB the validators
	// received about 1.25 payload copies of a block instead of about
	// 1.45, the full nodes about 2.9 instead of 3.6 (ADR 0002, tenth
	// session).
	AskHold    time.Duration
	AskMinRate int
	// BusyHold, under lazy gossip: a full node with AskHold that begins
	// to receive a frame AskHold counts (a block from a validator) tells
	// the other peers of its mesh, over background unicast, that it is
	// busy for BusyHold (busy.go), and every node with LargeWriteHold
	// holds its large gossip writes to a peer that said so until the
	// notice runs out (what the peer asked for, capped at BusyHold from
	// when it was heard; at most three BusyHolds per write, however often
	// the peer renews), or until that peer has declined everything they
	// carry. Each of a full node's validators pushed it the block as soon
	// as it had it, so two or three copies shared its downlink, none
	// whole for a second, and none could be declined. A peer can only
	// hold back what is written to itself. 0 sends no notice and heeds
	// none. Default 1s, about two megabytes' time at 20 Mbit/s: at 100
	// nodes and 1 MiB full nodes received about 2.1 copies of a block
	// instead of 3.0, and their p99 was 5.7 s on average over five seeds
	// against 6.6 s; a write held at most one BusyHold, 6.5 s; 2s, 5.7 s
	// but slower validators (ADR 0002, eleventh session).
	BusyHold time.Duration
	// ClearWait, under lazy gossip with BusyHold: a node asks a peer that
	// lists ClearProtocolID before it writes it a large gossip frame,
	// holding its turn for the answer at most this long, and writes when
	// the peer clears it or does not answer in time (then it does not ask
	// that peer for a minute); a peer that says it is busy holds the
	// write as a busy notice does. A node clears one validator at a time,
	// and beside it one peer of its mesh outside the set, each for at most
	// this long until its frame begins, tells the others it is busy, and
	// tells everyone so while a validator's block arrives (clear.go). At
	// most LargeWriteHold. Notices cannot hold the copies validators begin within
	// a link of each other, which were most of a late full node's. 0
	// asks nothing and answers nothing. Default 500ms, a round trip on
	// most links and about an eighth of a 1 MiB block's time at 20
	// Mbit/s: at 100 nodes and 1 MiB the full nodes' p99 was about 4.0 s
	// instead of 5.8 s, with 1.1 copies of a block instead of 1.8 (ADR
	// 0002, thirteenth session).
	ClearWait time.Duration
	// RepairSlack, under lazy gossip, turns repairs on: a full node
	// holding a small message from a validator sends a copy on background
	// unicast (a repair) to each validator of its mesh that lists
	// RepairProtocolID and has not said it has the message a link for
	// each RainTree hop it gets it after the sender, and this slack (at
	// least half a link), after the copy came, so that a validator below
	// a silent head has it about a link after the tree should have
	// brought it rather than after the hold (repair.go); pubsub's own
	// copy to it is left out (which needs LargeWriteHold's uplink). A
	// repair falls due before the hold ends or not at all; each goes on
	// its own goroutine, at most 64 under way and 50 a second to one
	// validator (burst 20), beyond which pubsub's copy goes instead. 0,
	// the default, repairs nothing (validators take repairs either way).
	// Off by default because it costs gossip payload for a gain that
	// does not reach stock gossipsub's tail: at 100 nodes with 30% silent
	// and 10ms (a link), the validators' p50 fell 14-15% in three runs and
	// their p99 in two (73.9 to 59.7 ms, 69.2 to 66.0; 76.5 to 82.1 in the
	// third; 69.3 to 73.3 in a rerun of the first after the review's
	// fixes), for 0.45-0.51 of gossipsub's payload against 0.39-0.48;
	// healthy runs sent one or two repairs (ADR 0002, fourteenth session).
	RepairSlack time.Duration
	// MaxHeldBytes bounds the bytes of the messages a full node holds for
	// their forward delay; a message beyond it is forwarded at once and
	// counted (Stats.HeldFull). Default 64 MiB: a 20 Mbit/s downlink fills
	// 3.75 MB in LargeForwardDelay, a 340 Mbit/s one the whole budget.
	MaxHeldBytes int
	// MaxHaveSignals bounds the message IDs a full node remembers that
	// validators in its mesh said they have (release.go), each for
	// LargeForwardDelay: a hold ends as soon as every one of them has said
	// so. Beyond it the oldest ID is forgotten and counted
	// (Stats.SignalsFull); a hold for it then lasts its forward delay.
	// Default 4096 IDs (about 0.9 MB with three validators in the mesh).
	MaxHaveSignals int
	// LazyDlazy is, under lazy gossip, how many peers outside its mesh a
	// node advertises (IHAVE) recent messages to per heartbeat: exactly
	// that many, as pubsub's GossipFactor, which would raise it to a
	// quarter of those peers, is set to 0. A node asks (IWANT) every peer
	// that advertises a message it has not yet received, so while a large
	// message takes seconds to spread each advertisement can cost a
	// duplicate copy. Default 2 (stock Dlazy is 6); eager mesh forwarding,
	// not IHAVE, is what carries and repairs messages quickly.
	LazyDlazy int
	// SubmitFallback is how long a full node under lazy gossip waits for
	// its own broadcast, handed to its parent validator, to come back
	// through gossip before it publishes it on gossip itself. It bounds
	// what a parent that drops submissions can delay. Default 1s.
	SubmitFallback time.Duration
	// SubmitInParts makes a full node under lazy gossip hand a small
	// broadcast (one RainTree does not pace) straight to the validators that head
	// the parts of the ring RainTree's first hop would make (p2p wires
	// this up with raintree.HandoverTargets), rather than all of it to
	// its parent: the broadcast then takes as many hops as a validator's
	// own, not one more. The full node keeps those validators connected.
	// Default true.
	SubmitInParts bool
	// LargeSubmitFallback is SubmitFallback for messages of LargeBytes and
	// more, which take RainTree seconds to spread and validators a tree's
	// worth of uplink before they hand them to gossip. Default 15s.
	LargeSubmitFallback time.Duration
	// MaxPending bounds the messages waiting to be published later
	// (submitted broadcasts waiting for SubmitFallback, and delayed
	// republications); beyond it they are published at once and counted
	// in Stats.PendingFull. Default 4096.
	MaxPending int
	// SubmitProofWait is how long per MiB (at least this long) a full node waits for
	// its parent's proof that it started a whole-ring submission of
	// LargeBytes or more (a block) on RainTree: the signed receipt of one
	// of the parent's own targets (docs/PROTOCOL.md section 5). Without it
	// the full node takes the parent for one that sits on blocks, passes
	// it over for UnprovenParentTTL and hands the block to its next
	// parent, at most MaxSubmitAttempts parents in all, then publishes it.
	// The wait runs from the end of the full node's send. At 20 Mbit/s an
	// honest parent's proof came 1.0–1.1 s after it in the simulator (the
	// parent sends a MiB on before its target acknowledges); 2s leaves
	// room for uplinks half as fast, and a proof that comes late costs a
	// second tree of the block, never the block. Full nodes ask only on
	// sets of five validators or more. Zero turns proofs off: the full
	// node then waits LargeSubmitFallback. Default 2s.
	SubmitProofWait time.Duration
	// UnprovenParentTTL is how long a full node passes over a parent that
	// gave no proof (SubmitProofWait). Default 10m.
	UnprovenParentTTL time.Duration
	// MaxSubmitAttempts bounds the parents a block is handed to before
	// the full node publishes it itself, which for a block is slow: lazy
	// gossip carries it to validators through full nodes' holds. Each
	// attempt costs the full node an upload of the block and about
	// SubmitProofWait; with 30% silent validators five all silent happen
	// about once in 400 blocks (three: once in 37). Default 5.
	MaxSubmitAttempts int
	// MaxProofQueue bounds the proofs a validator has yet to send to the
	// full nodes whose blocks it started, MaxProofQueuePerPeer those to one
	// full node (each full node's are sent by a goroutine of its own);
	// beyond either they are dropped and counted in Stats.ProofsDropped.
	// Defaults 64 and 4.
	MaxProofQueue, MaxProofQueuePerPeer int
}

// Defaults used by DefaultConfig.
const (
	DefaultMaxMessageSize        = wire.DefaultMaxMessageSize
	DefaultSubscriptionBuffer    = 4096
	DefaultValidateQueueSize     = 4096
	DefaultPeerOutboundQueueSize = 4096
	DefaultRandomSubSize         = 64
	DefaultAdvertiseInterval     = time.Minute
	DefaultValidatorD            = 2
	DefaultValidatorDhi          = 5
	DefaultForwardDelay          = 20 * time.Millisecond
	DefaultMaxForwardDelay       = time.Second
	DefaultLargeBytes            = 64 << 10
	DefaultLargeForwardDelay     = 1500 * time.Millisecond
	DefaultLazyDlazy             = 2
	DefaultMaxHeldBytes          = 64 << 20
	DefaultLargeWriteHold        = 2 * time.Second
	DefaultUnwantedMemory        = 8192
	DefaultAskHold               = 3 * time.Second
	DefaultAskMinRate            = 128 << 10
	DefaultBusyHold              = time.Second
	DefaultClearWait             = 500 * time.Millisecond
	DefaultMaxHaveSignals        = 4096
	DefaultSubmitFallback        = time.Second
	DefaultLargeSubmitFallback   = 15 * time.Second
	DefaultMaxPending            = 4096
	DefaultSubmitProofWait       = 2 * time.Second
	DefaultUnprovenParentTTL     = 10 * time.Minute
	DefaultMaxSubmitAttempts     = 5
	DefaultMaxProofQueue         = 64
	DefaultMaxProofQueuePerPeer  = 4
	// DefaultDirectRate and DefaultDirectBurst bound the direct sends
	// (background unicast) accepted from one peer.
	DefaultDirectRate  = 100
	DefaultDirectBurst = 200
	// DefaultMaxRateLimitedPeers is how many peers' direct-send buckets
	// are kept.
	DefaultMaxRateLimitedPeers = 4096
)

// DefaultGossipParams returns the gossipsub parameters described on
// GossipParams.
func DefaultGossipParams() GossipParams {
	return GossipParams{
		D: 6, Dlo: 5, Dhi: 12, Dlazy: 6,
		HeartbeatInterval: 700 * time.Millisecond,
		HistoryLength:     6,
		HistoryGossip:     3,
		FloodPublish:      true,

		LazyAmongValidators:  true,
		ValidatorD:           DefaultValidatorD,
		ValidatorDhi:         DefaultValidatorDhi,
		ForwardDelay:         DefaultForwardDelay,
		MaxForwardDelay:      DefaultMaxForwardDelay,
		LargeBytes:           DefaultLargeBytes,
		LargeForwardDelay:    DefaultLargeForwardDelay,
		LazyDlazy:            DefaultLazyDlazy,
		MaxHeldBytes:         DefaultMaxHeldBytes,
		LargeWriteHold:       DefaultLargeWriteHold,
		UnwantedMemory:       DefaultUnwantedMemory,
		AskHold:              DefaultAskHold,
		AskMinRate:           DefaultAskMinRate,
		BusyHold:             DefaultBusyHold,
		ClearWait:            DefaultClearWait,
		MaxHaveSignals:       DefaultMaxHaveSignals,
		SubmitFallback:       DefaultSubmitFallback,
		SubmitInParts:        true,
		LargeSubmitFallback:  DefaultLargeSubmitFallback,
		MaxPending:           DefaultMaxPending,
		SubmitProofWait:      DefaultSubmitProofWait,
		UnprovenParentTTL:    DefaultUnprovenParentTTL,
		MaxSubmitAttempts:    DefaultMaxSubmitAttempts,
		MaxProofQueue:        DefaultMaxProofQueue,
		MaxProofQueuePerPeer: DefaultMaxProofQueuePerPeer,
	}
}

// StockGossipParams are go-libp2p-pubsub's DefaultGossipSubParams (D=6,
// Dlo=5, Dhi=12, 1s heartbeat, 5/3 history) with flood publishing on,
// which a publish right after start-up needs. The simulator's plain
// gossipsub baseline runs them, so tuning DefaultGossipParams never moves
// the baseline a strategy is compared with.
func StockGossipParams() GossipParams {
	p := pubsub.DefaultGossipSubParams()
	return GossipParams{
		D: p.D, Dlo: p.Dlo, Dhi: p.Dhi, Dlazy: p.Dlazy,
		HeartbeatInterval: p.HeartbeatInterval,
		HistoryLength:     p.HistoryLength,
		HistoryGossip:     p.HistoryGossip,
		FloodPublish:      true,
	}
}

// Config configures a Router. Start from DefaultConfig.
type Config struct {
	// NetworkID names the network. It is part of the topic, the DHT
	// protocol prefix and the unicast protocol, so two networks sharing
	// hosts never exchange background traffic. Required; no '/' or spaces.
	NetworkID string
	// PubSub selects the router. Default GossipSub.
	PubSub PubSubKind
	// Gossip tunes GossipSub; ignored by the other kinds.
	Gossip GossipParams
	// RandomSubSize is RandomSub's network-size hint: it forwards to
	// max(6, ceil(sqrt(size))) peers. Default 64, so it forwards to 8,
	// matching the gossipsub mesh degree.
	RandomSubSize int
	// MaxMessageSize bounds one envelope. Default 4 MiB. Pubsub's own RPC
	// limit is raised above it by the framing overhead; every node of a
	// network must use the same value or larger messages are cut off.
	MaxMessageSize int
	// SubscriptionBuffer is how many validated messages may wait for the
	// handler before pubsub drops them (counted in
	// Stats.DroppedSubscriptionFull). Default 4096; pubsub's is 32.
	SubscriptionBuffer int
	// ValidateQueueSize bounds messages waiting for validation (drops are
	// counted in Stats.DroppedValidation). PeerOutboundQueueSize bounds
	// RPCs queued to one peer (drops counted in Stats.DroppedOutbound).
	// Both count messages, not bytes. Default 4096 each, against pubsub's
	// 32, so a burst of a few thousand small envelopes is absorbed; the
	// price is memory when the burst is made of large messages.
	ValidateQueueSize, PeerOutboundQueueSize int
	// BootstrapPeers are dialed in the background, with backoff, and
	// redialed when the connection drops. One reachable peer is enough:
	// the DHT finds the rest.
	BootstrapPeers []peer.AddrInfo
	// DHT runs a Kademlia DHT (server mode) for peer discovery. Default
	// true; without it only bootstrap peers and inbound peers are known.
	DHT bool
	// AdvertiseInterval is how often the node re-advertises itself on the
	// DHT, looks for more topic peers and redials lost bootstrap peers.
	// Default 1m: a newcomer's provider lookup then sees every live node
	// that advertised within the last minute, for one small DHT round per
	// node per minute. Failed rounds (for example an empty routing table
	// right after start) retry sooner, with backoff.
	AdvertiseInterval time.Duration
	// RainTreeValidator says the node is a validator that also broadcasts
	// on RainTree. With Gossip.LazyAmongValidators it gossips lazily with
	// the peers given to SetValidatorIDs, meshes only with full nodes
	// (Gossip.ValidatorD of them) and does not flood-publish. It is read
	// once, when the router is created: a node that joins or leaves the
	// validator set later keeps its mesh degree until it restarts (lazy
	// peers follow SetValidatorIDs at once).
	RainTreeValidator bool
	// ProvesSubmissions says the node, while a validator, can prove that
	// it started a full node's block on RainTree (proof.go): its RainTree
	// router runs cover mode with ACKs, whose receipts make the proof.
	// Only such a node lists SubmitProofProtocolID, so that full nodes ask
	// no proof of one that could never give it and pass it over. The p2p
	// Module sets it from its RainTree configuration; default false.
	ProvesSubmissions bool
	// HopsAfter, when set, tells a full node of a lazy network how many
	// RainTree hops after validator from the last validator gets msg when
	// nothing fails (false when it cannot tell), so that it holds a small
	// message from from about a link per hop and a round trip more rather
	// than two round trips (forward.go). The Module sets it from the
	// validator set; nil means two round trips.
	HopsAfter func(msg *wire.Message, from peer.ID) (hops int, ok bool)
	// HopOf, when set, tells a full node of a lazy network at which
	// RainTree hop validator p gets a small msg when nothing fails (false
	// when it cannot tell), so that it can repair a validator of its mesh
	// that has not said it has msg a link after that hop (repair.go,
	// GossipParams.RepairSlack). The Module sets it from the validator
	// set; nil repairs nothing.
	HopOf func(msg *wire.Message, p peer.ID) (hop int, ok bool)
	// ReplayWindow and ClockSkew bound the creation time of gossip that is
	// delivered and forwarded (see package dedup); older or newer valid
	// messages are ignored. Pubsub's seen-message memory is kept for
	// ReplayWindow + 2*ClockSkew. The Module sets both from its own.
	// Defaults dedup.DefaultWindow and dedup.DefaultSkew.
	ReplayWindow, ClockSkew time.Duration
	// Silent is fault injection: the node still receives and delivers
	// every valid message, but never forwards anyone else's. Its own
	// broadcasts are published normally.
	Silent bool
	// Scoring configures gossipsub peer scoring (penalties for invalid
	// messages). Default DefaultScoreParams().
	Scoring ScoreParams
	// DirectRate is how many direct sends (background unicast messages)
	// per second one peer may make to us, with bursts of DirectBurst;
	// beyond that its messages are dropped and counted
	// (Stats.DroppedRateLimited). Default 100/s, bursts of 200.
	DirectRate  float64
	DirectBurst int
	// MaxRateLimitedPeers bounds the peers whose DirectRate buckets are
	// kept; beyond it idle buckets are dropped first, then arbitrary ones,
	// counted in Stats.RateLimitForgotten. Default 4096.
	MaxRateLimitedPeers int
	// Unicast configures the background unicast path. Its MaxMessageSize
	// may be left 0, meaning MaxMessageSize plus the frame overhead.
	Unicast unicast.Config
	// Logger receives lifecycle and drop events. nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a complete Config for networkID.
func DefaultConfig(networkID string) Config {
	uc := unicast.DefaultConfig(UnicastProtocolID(networkID))
	uc.MaxMessageSize = 0
	return Config{
		NetworkID:             networkID,
		PubSub:                GossipSub,
		Gossip:                DefaultGossipParams(),
		RandomSubSize:         DefaultRandomSubSize,
		MaxMessageSize:        DefaultMaxMessageSize,
		SubscriptionBuffer:    DefaultSubscriptionBuffer,
		ValidateQueueSize:     DefaultValidateQueueSize,
		PeerOutboundQueueSize: DefaultPeerOutboundQueueSize,
		DHT:                   true,
		AdvertiseInterval:     DefaultAdvertiseInterval,
		Scoring:               DefaultScoreParams(),
		DirectRate:            DefaultDirectRate,
		DirectBurst:           DefaultDirectBurst,
		MaxRateLimitedPeers:   DefaultMaxRateLimitedPeers,
		ReplayWindow:          dedup.DefaultWindow,
		ClockSkew:             dedup.DefaultSkew,
		Unicast:               uc,
	}
}

// TopicName is the pubsub topic of networkID.
func TopicName(networkID string) string {
	return "/rainp2p/" + networkID + "/background/1.0.0"
}

// DHTProtocolPrefix is the DHT protocol prefix of networkID; the DHT
// speaks <prefix>/kad/1.0.0.
func DHTProtocolPrefix(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID)
}

// UnicastProtocolID is the background unicast protocol of networkID.
func UnicastProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/background/unicast/1.0.0")
}

// SubmitProofProtocolID names what a node of a lazy network that answers
// a block's want_proof lists in identify (proof.go). No stream on it
// carries anything: it only tells a full node that the validator it
// hands a block to will prove it started it, so that validators of an
// older release, which would not, are not taken for silent ones.
func SubmitProofProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/background/submit-proof/1.0.0")
}

// BusyProtocolID names what a node that heeds busy notices (busy.go)
// lists in identify. No stream on it carries anything: a full node sends
// its notices, on the background unicast protocol, only to peers that
// list it, since a node of an older release would take one for a
// malformed frame.
func BusyProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/background/busy/1.0.0")
}

// ClearProtocolID names what a node that answers asks to send
// (clear.go) lists in identify. No stream on it carries anything: a node
// asks, on the background unicast protocol, only peers that list it,
// since a node of an older release would take an ask for a malformed
// frame.
func ClearProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/background/clear/1.0.0")
}

// pubsubMaxMessageSize is the RPC limit handed to pubsub: one envelope,
// its BackgroundMessage framing, and room for the pubsub message fields
// (topic; no author fields under StrictNoSign) and RPC framing.
func (c Config) pubsubMaxMessageSize() int {
	return c.MaxMessageSize + wire.FrameOverhead + 4096
}

func (c Config) unicastMaxMessageSize() int {
	return c.MaxMessageSize + wire.FrameOverhead
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.NetworkID == "":
		return errors.New("background: NetworkID is empty")
	case strings.ContainsAny(c.NetworkID, "/ \t\n"):
		return fmt.Errorf("background: NetworkID %q must not contain '/' or whitespace", c.NetworkID)
	case c.MaxMessageSize <= 0:
		return fmt.Errorf("background: MaxMessageSize %d must be positive", c.MaxMessageSize)
	case c.SubscriptionBuffer <= 0:
		return fmt.Errorf("background: SubscriptionBuffer %d must be positive", c.SubscriptionBuffer)
	case c.ValidateQueueSize <= 0:
		return fmt.Errorf("background: ValidateQueueSize %d must be positive", c.ValidateQueueSize)
	case c.PeerOutboundQueueSize <= 0:
		return fmt.Errorf("background: PeerOutboundQueueSize %d must be positive", c.PeerOutboundQueueSize)
	case c.AdvertiseInterval <= 0:
		return fmt.Errorf("background: AdvertiseInterval %v must be positive", c.AdvertiseInterval)
	case !(c.DirectRate > 0) || c.DirectBurst <= 0:
		return fmt.Errorf("background: DirectRate %v and DirectBurst %d must be positive", c.DirectRate, c.DirectBurst)
	case c.MaxRateLimitedPeers <= 0:
		return fmt.Errorf("background: MaxRateLimitedPeers %d must be positive", c.MaxRateLimitedPeers)
	case c.ReplayWindow <= 0 || c.ClockSkew < 0:
		return fmt.Errorf("background: ReplayWindow %v must be positive and ClockSkew %v not negative", c.ReplayWindow, c.ClockSkew)
	}
	if err := c.Scoring.validate(); err != nil {
		return fmt.Errorf("background: scoring: %w", err)
	}
	if _, err := ParsePubSubKind(string(c.PubSub)); err != nil {
		return fmt.Errorf("background: %w", err)
	}
	switch c.PubSub {
	case RandomSub:
		if c.RandomSubSize <= 0 {
			return fmt.Errorf("background: RandomSubSize %d must be positive", c.RandomSubSize)
		}
	case GossipSub, "":
		if err := c.Gossip.validate(); err != nil {
			return fmt.Errorf("background: gossip: %w", err)
		}
	}
	uc := c.Unicast
	if uc.MaxMessageSize == 0 {
		uc.MaxMessageSize = c.unicastMaxMessageSize()
	} else if uc.MaxMessageSize < c.unicastMaxMessageSize() {
		return fmt.Errorf("background: Unicast.MaxMessageSize %d is below MaxMessageSize plus framing (%d)", uc.MaxMessageSize, c.unicastMaxMessageSize())
	}
	if err := uc.Validate(); err != nil {
		return fmt.Errorf("background: %w", err)
	}
	return nil
}

func (g GossipParams) validate() error {
	switch {
	case g.Dlo <= 0 || g.D < 2 || g.D < g.Dlo || g.Dhi < g.D:
		return fmt.Errorf("want 0 < Dlo <= D <= Dhi and D >= 2, have Dlo=%d D=%d Dhi=%d", g.Dlo, g.D, g.Dhi)
	case g.Dlazy < 0:
		return fmt.Errorf("Dlazy %d must not be negative", g.Dlazy)
	case g.HeartbeatInterval <= 0:
		return fmt.Errorf("HeartbeatInterval %v must be positive", g.HeartbeatInterval)
	case g.HistoryGossip <= 0 || g.HistoryLength < g.HistoryGossip:
		return fmt.Errorf("want 0 < HistoryGossip <= HistoryLength, have %d and %d", g.HistoryGossip, g.HistoryLength)
	case g.LazyAmongValidators && g.ValidatorD < 2:
		return fmt.Errorf("ValidatorD %d must be at least 2 with LazyAmongValidators", g.ValidatorD)
	case g.LazyAmongValidators && g.ValidatorDhi < g.ValidatorD:
		return fmt.Errorf("ValidatorDhi %d must be at least ValidatorD %d with LazyAmongValidators", g.ValidatorDhi, g.ValidatorD)
	case g.LazyAmongValidators && (g.ForwardDelay < 0 || g.MaxForwardDelay < g.ForwardDelay || g.MaxForwardDelay >= g.idontwantLifetime()):
		return fmt.Errorf("ForwardDelay %v must be at least 0, and MaxForwardDelay %v at least ForwardDelay and below %v, how long pubsub remembers an IDONTWANT",
			g.ForwardDelay, g.MaxForwardDelay, g.idontwantLifetime())
	case g.LazyAmongValidators && (g.LargeBytes <= 0 || g.LargeForwardDelay < g.ForwardDelay || g.LargeForwardDelay >= g.idontwantLifetime()):
		return fmt.Errorf("LargeBytes %d must be positive, and LargeForwardDelay %v at least ForwardDelay %v and below %v, how long pubsub remembers an IDONTWANT",
			g.LargeBytes, g.LargeForwardDelay, g.ForwardDelay, g.idontwantLifetime())
	case g.LazyAmongValidators && g.LazyDlazy < 0:
		return fmt.Errorf("LazyDlazy %d must not be negative", g.LazyDlazy)
	case g.LazyAmongValidators && (g.LargeWriteHold < 0 || g.LargeWriteHold > 0 && g.UnwantedMemory <= 0):
		return fmt.Errorf("LargeWriteHold %v must not be negative, and UnwantedMemory %d positive when it is not 0", g.LargeWriteHold, g.UnwantedMemory)
	case g.LazyAmongValidators && (g.AskHold < 0 || g.AskHold > 0 && (g.AskHold <= askGrace || g.AskMinRate <= 0)):
		return fmt.Errorf("AskHold %v must be 0 or more than %v, and AskMinRate %d positive when it is not 0", g.AskHold, askGrace, g.AskMinRate)
	case g.BusyHold < 0 || g.BusyHold > 0 && g.BusyHold < time.Millisecond:
		return fmt.Errorf("BusyHold %v must be 0 or at least 1ms (notices count milliseconds)", g.BusyHold)
	case g.ClearWait < 0 || g.ClearWait > 0 && g.LargeWriteHold > 0 && g.ClearWait > g.LargeWriteHold:
		return fmt.Errorf("ClearWait %v must not be negative, nor above LargeWriteHold %v (a write holds its turn for the answer)", g.ClearWait, g.LargeWriteHold)
	case g.LazyAmongValidators && (g.RepairSlack < 0 || g.RepairSlack > 0 && g.LargeWriteHold <= 0):
		return fmt.Errorf("RepairSlack %v must not be negative, and needs LargeWriteHold (%v), whose uplink leaves pubsub's copy to a repaired validator out", g.RepairSlack, g.LargeWriteHold)
	case g.LazyAmongValidators && g.MaxHeldBytes <= 0:
		return fmt.Errorf("MaxHeldBytes %d must be positive", g.MaxHeldBytes)
	case g.LazyAmongValidators && g.MaxHaveSignals <= 0:
		return fmt.Errorf("MaxHaveSignals %d must be positive", g.MaxHaveSignals)
	case g.LazyAmongValidators && (g.SubmitFallback <= 0 || g.LargeSubmitFallback < g.SubmitFallback || g.MaxPending <= 0):
		return fmt.Errorf("SubmitFallback %v and MaxPending %d must be positive, and LargeSubmitFallback %v at least SubmitFallback, with LazyAmongValidators",
			g.SubmitFallback, g.MaxPending, g.LargeSubmitFallback)
	case g.LazyAmongValidators && (g.SubmitProofWait < 0 || g.MaxProofQueue <= 0 || g.MaxProofQueuePerPeer <= 0):
		return fmt.Errorf("SubmitProofWait %v must not be negative, and MaxProofQueue %d and MaxProofQueuePerPeer %d must be positive, with LazyAmongValidators",
			g.SubmitProofWait, g.MaxProofQueue, g.MaxProofQueuePerPeer)
	case g.LazyAmongValidators && g.SubmitProofWait > 0 && (g.UnprovenParentTTL <= 0 || g.MaxSubmitAttempts < 1):
		return fmt.Errorf("UnprovenParentTTL %v and MaxSubmitAttempts %d must be positive with SubmitProofWait", g.UnprovenParentTTL, g.MaxSubmitAttempts)
	}
	return nil
}

// idontwantLifetime is how long pubsub honours an IDONTWANT.
func (g GossipParams) idontwantLifetime() time.Duration {
	return time.Duration(pubsub.GossipSubIDontWantMessageTTL) * g.HeartbeatInterval
}
