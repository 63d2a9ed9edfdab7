package raintree

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/internal/peerqueue"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Sentinel errors callers branch on.
var (
	ErrNotValidator = errors.New("raintree: not a validator")
	ErrClosed       = errors.New("raintree: router closed")
	// ErrQueueFull: the target's outbound queue was full.
	ErrQueueFull = errors.New("raintree: outbound queue full")
	// ErrDisconnected: the target, a neighbour, had no connection (see
	// Config.SkipDisconnectedAfter); its span went to the next validator.
	ErrDisconnected = errors.New("raintree: neighbour not connected")
	// ErrBadHandover: a full node's handover (RelayParts) is not from the
	// message's origin, names a set this validator does not know itself
	// in, or holds parts that are not distinct parts of the origin's own
	// (HandoverParts).
	ErrBadHandover = errors.New("raintree: handover not the origin's own parts on a known set")

	errProofOutsideSpan = errors.New("receipt for a frame outside the span")
)

// Handler receives a message the router accepted, decoded and verified,
// with broadcast false for a unicast. from is the validator that sent this
// copy; msg.Origin is the authenticated originator. A broadcast is handed
// over once per (message, span) in cover mode and per (message, level) in
// reference mode, so the caller still deduplicates by msg.ID. leaf reports
// a broadcast this node forwards to nobody although it propagates (its
// span was itself alone, or the plan ends here): by the time a leaf has a
// message, nearly every validator has it. It is called from one goroutine,
// after the frame was acknowledged and forwarded; while it blocks, further
// messages wait in a queue of Config.DeliveryQueueLen and then are dropped
// for RainTree (gossip still brings them). It must not call Close.
type Handler func(from peer.ID, msg *wire.Message, broadcast, leaf bool)

// Stats is a snapshot of a Router's counters. Tree frames are the payload
// frames the plan predicts (level 1 and up); redundant frames are the
// originator's extra level-0 copies.
type Stats struct {
	TreeSent, TreeReceived           uint64
	RedundantSent, RedundantReceived uint64
	UnicastSent, UnicastReceived     uint64
	AcksSent, AcksReceived           uint64
	// AcksUnexpected counts ACKs nobody waited for: late, duplicated or
	// forged. An ACK that comes after its head's proof of forwarding is
	// expected (AcksReceived).
	AcksUnexpected uint64
	// AckTimeouts counts tree frames that were not acknowledged in time or
	// could not be sent at all.
	AckTimeouts uint64
	// Retries counts re-delegations to the next validator of a span.
	Retries uint64
	// PartsRelayed counts the ring parts of full nodes' handovers this
	// validator started (RelayParts); HandoversRefused the handovers it
	// refused and relayed on the whole ring instead.
	PartsRelayed, HandoversRefused uint64
	// GaveUp counts unacknowledged targets that could not be re-delegated:
	// retries exhausted, span exhausted, or a reference frame.
	GaveUp uint64
	// Duplicates counts broadcast frames for a (message, span) in cover
	// mode, or a (message, level) in reference mode, already handled:
	// neither forwarded nor delivered again.
	Duplicates uint64
	// UnknownSetDelivered counts broadcasts planned on a validator set this
	// node does not know, delivered because the sender is a current
	// validator, but not forwarded.
	UnknownSetDelivered uint64
	// SeenEvicted counts seen keys forgotten to bound memory (each may
	// raise the seen memory's floor; see package dedup).
	SeenEvicted uint64
	// SendErrors counts frames of any kind the transport refused.
	SendErrors uint64
	// NotForwarded counts tree frames whose head acknowledged but sent no
	// valid proof of forwarding in time (Config.CheckForwarding); each
	// span went on without its head, and counts in Retries or GaveUp.
	NotForwarded uint64
	// SkippedLaggards counts paced frames whose head recently failed to
	// prove it forwarded (Config.LaggardTTL): it got a frame of itself
	// alone and the next validator the rest of the span.
	SkippedLaggards uint64
	// SlowHeads counts paced frames given up because their head read them
	// far slower than this node's frames usually go (Config.SlowSendFactor);
	// each span went on without its head, which became a laggard.
	SlowHeads uint64
	// ProofsSent counts proofs of forwarding sent (on their own protocol,
	// apart from AcksSent); ProofsReceived valid ones received;
	// ProofsUnexpected proofs nobody waited for (late or duplicated).
	ProofsSent, ProofsReceived, ProofsUnexpected uint64
	// SkippedDisconnected counts tree frames re-delegated without a dial
	// because their target, a RainTree neighbour, had no connection (see
	// Config.SkipDisconnectedAfter); each also counts in Retries or GaveUp.
	SkippedDisconnected uint64
	Dropped             DropStats
}

// DropStats counts inbound frames dropped, by reason.
type DropStats struct {
	// Malformed: undecodable frame or envelope, unknown kind, a message
	// ID that does not match the envelope, or a span that does not start
	// at this node.
	Malformed uint64
	// BadSignature: an envelope that is unsigned or whose signature does
	// not verify (a relay altered it, or forged it), a unicast envelope for
	// another node, or a unicast envelope in a broadcast frame.
	BadSignature uint64
	// Stale: a broadcast created outside the replay window, or at or
	// before the seen memory's floor.
	Stale uint64
	// InboundFull: a payload frame that did not fit its sender's inbound
	// queue (InboundQueueLen, InboundQueueBytes).
	InboundFull uint64
	// OutboundFull: a frame to send that did not fit its target's queue
	// (OutboundQueueLen, OutboundQueueBytes); a tree frame is then
	// re-delegated.
	OutboundFull uint64
	// DeliveryFull: an accepted message the handler was too slow to take
	// (DeliveryQueueLen, DeliveryQueueBytes); it was still acknowledged
	// and forwarded.
	DeliveryFull uint64
	// ACKQueueFull: an ACK (or proof of forwarding) that did not fit its
	// validator's queue (ACKQueuePerPeer), or that made way for another
	// validator's when all of them held ACKQueueLen.
	ACKQueueFull uint64
	// TooLarge: envelope above MaxMessageSize.
	TooLarge uint64
	// UnknownSender: the sender is not a validator of the frame's set.
	UnknownSender uint64
	// UnknownSet: planned on an unknown set by a non-validator.
	UnknownSet uint64
	// BadReceipt: a proof of forwarding whose receipt is malformed, about
	// a frame outside the span, or not signed by that frame's head.
	BadReceipt uint64
}

type counters struct {
	treeSent, treeReceived           atomic.Uint64
	redundantSent, redundantReceived atomic.Uint64
	unicastSent, unicastReceived     atomic.Uint64
	acksSent, acksReceived           atomic.Uint64
	acksUnexpected, ackTimeouts      atomic.Uint64
	retries, gaveUp                  atomic.Uint64
	duplicates, unknownSetDelivered  atomic.Uint64
	sendErrors, skippedDisconnected  atomic.Uint64
	notForwarded, proofsReceived     atomic.Uint64
	skippedLaggards, partsRelayed    atomic.Uint64
	slowHeads                        atomic.Uint64
	handoversRefused                 atomic.Uint64
	proofsSent                       atomic.Uint64
	proofsUnexpected, badReceipt     atomic.Uint64
	malformed, tooLarge              atomic.Uint64
	badSignature, stale              atomic.Uint64
	inboundFull, outboundFull        atomic.Uint64
	deliveryFull, ackQueueFull       atomic.Uint64
	unknownSender, unknownSet        atomic.Uint64
}

// Router sends and receives RainTree frames over one unicast protocol. It
// decides nothing itself: targets come from the plan's step functions. It
// is safe for concurrent use.
type Router struct {
	host     host.Host
	self     identity.Address
	cfg      Config
	handler  Handler
	log      *slog.Logger
	clock    Clock
	hops     *hopTimer // held hops' HopHold (queues.go)
	uni      *unicast.Router
	ackUni   *unicast.Router // ACKs, on their own protocol
	proofUni *unicast.Router // proofs of forwarding (forwarded.go)
	key      crypto.PrivKey  // signs receipts (forwarded.go); nil: none
	ctx      context.Context // cancelled by Close; bounds every send
	cancel   context.CancelFunc

	mu     sync.Mutex
	closed bool
	cur    *setView
	recent []*setView // replaced sets, newest first
	seen   *dedup.Deduper[seenKey]
	acks   *ackTracker[delegation]
	// laggards are heads that failed to prove they forwarded a paced
	// frame, with when (forwarded.go); at most one entry per validator.
	laggards map[peer.ID]time.Time
	// pace is this node's recent pace of paced frames (pace.go).
	pace     sendPace
	timer    Timer
	timerAt  time.Time
	timerGen uint64
	out      map[peer.ID]*outQueue
	outBytes int64          // envelope bytes queued in out
	up       uplinkQueue    // large tree frames, one at a time (uplink.go)
	wg       sync.WaitGroup // workers, senders and the delivery loop

	in            *inbox
	ackq          *peerqueue.Queues[ackJob] // ackqueue.go
	deliveries    chan delivery
	deliveryBytes atomic.Int64

	c counters
}

// setView is a validator set with this node's place in it (-1 if absent).
type setView struct {
	set  *validators.Set
	hash string
	self int
	// replaced is when a newer set took over (zero while current).
	replaced time.Time
	// since is when this node took the set on; targets are its RainTree
	// targets in it (NeighboursOf), which it keeps connected.
	since   time.Time
	targets map[peer.ID]struct{}
}

func newSetView(set *validators.Set, self identity.Address) *setView {
	v := &setView{set: set, hash: string(set.Hash()), self: -1}
	if i, ok := set.IndexOf(self); ok {
		v.self = i
	}
	return v
}

// delegation is one tree frame to send, and what to re-delegate if its
// ACK does not come.
type delegation struct {
	view    *setView
	mode    Mode
	target  Target
	msg     *wire.Message
	retries int
	// result, if set, receives the outcome of the first attempt.
	result chan<- error
	// vouch is the proof of forwarding this node owes its own sender for
	// the frame that made it send this one (forwarded.go); nil at the root.
	vouch *vouch
	// sentAt is when this frame's send began; proof marks a wait for the
	// head's proof of forwarding.
	sentAt time.Time
	proof  bool
	// lateACK marks a wait for the ACK of a frame whose head's proof of
	// forwarding came first (forwarded.go, expectLateACK).
	lateACK bool
	// batch, if set, is the hop this frame belongs to (sendHops).
	batch *hopBatch
}

// NewRouter starts a router for the validator self, which must be in set
// and own h's identity.
func NewRouter(h host.Host, self identity.Address, set *validators.Set, cfg Config, handler Handler) (*Router, error) {
	switch {
	case h == nil:
		return nil, errors.New("raintree: nil host")
	case set == nil:
		return nil, errors.New("raintree: nil validator set")
	case handler == nil:
		return nil, errors.New("raintree: nil handler")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	view := newSetView(set, self)
	if view.self < 0 {
		return nil, fmt.Errorf("%w: %s is not in the set at height %d", ErrNotValidator, self, set.Height())
	}
	if id := set.At(view.self).PeerID; id != h.ID() {
		return nil, fmt.Errorf("raintree: validator %s has peer ID %s, but the host is %s", self, id, h.ID())
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	clock := cfg.Clock
	if clock == nil {
		clock = realClock{}
	}
	seen, err := dedup.New[seenKey](dedup.Config{
		Capacity: cfg.SeenCacheSize, Window: cfg.ReplayWindow, Skew: cfg.ClockSkew, Now: clock.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("raintree: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		host:     h,
		self:     self,
		cfg:      cfg,
		handler:  handler,
		log:      log.With("router", "raintree"),
		clock:    clock,
		ctx:      ctx,
		cancel:   cancel,
		key:      h.Peerstore().PrivKey(h.ID()),
		cur:      stampView(view, cfg, clock),
		seen:     seen,
		acks:     newAckTracker[delegation](),
		laggards: map[peer.ID]time.Time{},
		out:      make(map[peer.ID]*outQueue),
		in:       newInbox(cfg.InboundQueueLen, cfg.InboundQueueBytes),
		ackq:     peerqueue.New[ackJob](cfg.ACKQueuePerPeer, cfg.ACKQueueLen),
		// A delivery of each slot may pin a message of MaxMessageSize.
		deliveries: make(chan delivery, cfg.DeliveryQueueLen),
	}
	r.hops = &hopTimer{clock: clock, due: r.nextHop}
	// Frames can arrive as soon as the stream handlers are set; holding mu
	// makes every use of r.uni and r.ackUni (all behind mu or started
	// below) see the assignments.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ackUni, err = unicast.New(h, cfg.smallFrames(ACKProtocolID(cfg.NetworkID)), r.onlyKind(wire.RainTreeKind_RAIN_TREE_KIND_ACK, r.onAck)); err != nil {
		cancel()
		return nil, fmt.Errorf("raintree: %w", err)
	}
	if r.proofUni, err = unicast.New(h, cfg.smallFrames(ProofProtocolID(cfg.NetworkID)), r.onlyKind(wire.RainTreeKind_RAIN_TREE_KIND_FORWARDED, r.onForwarded)); err != nil {
		cancel()
		_ = r.ackUni.Close()
		return nil, fmt.Errorf("raintree: %w", err)
	}
	if r.uni, err = unicast.New(h, cfg.Unicast, r.onFrame); err != nil {
		cancel()
		_ = errors.Join(r.ackUni.Close(), r.proofUni.Close())
		return nil, fmt.Errorf("raintree: %w", err)
	}
	for range cfg.Workers {
		r.wg.Go(r.work)
	}
	r.wg.Go(r.deliverLoop)
	return r, nil
}

// stampView stamps a new view with the time it was taken on and this node's
// targets in it.
func stampView(v *setView, cfg Config, clock Clock) *setView {
	v.since = clock.Now()
	if v.self < 0 {
		return v
	}
	n := v.set.Len()
	nb := NeighboursOf(cfg.Mode, n, v.self, cfg.PerHops(n)...)
	v.targets = make(map[peer.ID]struct{}, len(nb.Targets))
	for _, i := range nb.Targets {
		v.targets[v.set.At(i).PeerID] = struct{}{}
	}
	return v
}

// maxACKFrame bounds a frame on the ACK and proof protocols: an ACK or a
// proof of forwarding is under 700 bytes with the largest signature
// libp2p keys make (512 bytes, RSA-4096), under 200 with ed25519.
const maxACKFrame = 1024

// smallFrames configures the transport of a protocol of small frames (ACKs,
// proofs of forwarding) like the payload protocol's (Config.Unicast: its
// timeouts, strike limits and trust), but for frames of at most
// maxACKFrame.
func (c Config) smallFrames(id protocol.ID) unicast.Config {
	u := c.Unicast
	u.ProtocolID, u.MaxMessageSize = id, maxACKFrame
	return u
}

// SetValidators switches to set for new broadcasts. Replaced sets are kept,
// up to RecentSets and for RecentSetTTL, so broadcasts planned on them keep
// propagating.
func (r *Router) SetValidators(set *validators.Set) {
	if set == nil {
		return
	}
	v := stampView(newSetView(set, r.self), r.cfg, r.clock)
	r.mu.Lock()
	defer r.mu.Unlock()
	if v.hash == r.cur.hash {
		return
	}
	r.recent = slices.DeleteFunc(r.recent, func(o *setView) bool { return o.hash == v.hash })
	r.cur.replaced = r.clock.Now()
	r.recent = slices.Insert(r.recent, 0, r.cur)
	r.recent = r.recent[:min(len(r.recent), r.cfg.RecentSets)]
	r.cur = v
}

// Broadcast originates msg (a signed message, see wire.Seal) on the
// current validator set: it sends the originator's targets of the plan,
// each concurrently, and returns once every first attempt finished or ctx
// is done. Propagation, ACKs and re-delegation continue in the background
// until Close. With ACK on, a failed first attempt is re-delegated rather
// than reported; with ACK off it is returned.
func (r *Router) Broadcast(ctx context.Context, msg *wire.Message) error {
	results, sends, err := r.originate(msg, true, nil)
	if err != nil {
		return err
	}
	var errs []error
	for range sends {
		select {
		case err := <-results:
			if err != nil {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("raintree: broadcast: %w", ctx.Err())
		}
	}
	if errors.Is(errors.Join(errs...), ErrClosed) {
		return ErrClosed
	}
	if len(errs) > 0 && !r.cfg.ACK {
		return fmt.Errorf("raintree: broadcast: %w", errors.Join(errs...))
	}
	return nil
}

// Relay starts msg, a broadcast this node did not originate (a full
// node's, handed over for that), on RainTree as the root of its tree. It
// returns once the sends are queued; failures are re-delegated with ACK
// on, and counted either way.
func (r *Router) Relay(msg *wire.Message) error {
	_, _, err := r.originate(msg, false, nil)
	return err
}

// RelayProving is Relay that also hands prove, once, the first valid
// receipt one of this root's targets gives for a paced (large) frame of
// msg of one of the root's largest spans (wire.MinProofSpan): the proof a full
// node that submitted msg whole waits for (forwarded.go). prove runs on
// the ACK's goroutine and must not block. It is never called for a
// message RainTree does not pace, without ACKs, or outside cover mode.
func (r *Router) RelayProving(msg *wire.Message, prove func(wire.Proof)) error {
	var v *vouch
	if msg != nil && prove != nil && r.cfg.ACK && r.cfg.Mode == ModeCover && r.cfg.Paces(len(msg.Raw)) {
		v = &vouch{msgID: msg.ID, report: prove}
	}
	_, _, err := r.originate(msg, false, v)
	return err
}

// originate queues the root's sends of msg, each owing v (nil for none).
// With report, each send's first attempt reports on the returned channel.
func (r *Router) originate(msg *wire.Message, report bool, v *vouch) (results chan error, sends int, err error) {
	if msg == nil || len(msg.Raw) > r.cfg.MaxMessageSize {
		return nil, 0, fmt.Errorf("raintree: broadcast: %w", wire.ErrTooLarge)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, 0, ErrClosed
	}
	view := r.cur
	n, mode := view.set.Len(), r.cfg.Mode
	r.mu.Unlock()
	if view.self >= 0 && mode == ModeCover {
		// The ring is ours: a copy coming back must not be propagated.
		r.observe(seenKey{id: msg.ID, span: Span{Start: view.self, Len: n}}, msg)
	}
	if view.self < 0 {
		return nil, 0, fmt.Errorf("raintree: broadcast: %w: %s", ErrNotValidator, r.self)
	}

	ds := make([]delegation, 0, 2*Levels(n)+n)
	for _, t := range OriginTargets(mode, n, view.self, r.cfg.LevelsPerHopFor(n, len(msg.Raw))) {
		ds = append(ds, delegation{view: view, mode: mode, target: t, msg: msg, vouch: v})
	}
	if r.cfg.Redundancy {
		for i := range n {
			if i != view.self {
				ds = append(ds, delegation{view: view, mode: mode, target: Target{Index: i}, msg: msg})
			}
		}
	}
	if report {
		results = make(chan error, len(ds))
	}
	for i := range ds {
		ds[i].result = results
	}
	r.sendHops(msg, ds)
	return results, len(ds), nil
}

// Send delivers msg (signed by this node, see wire.Seal) to the validator
// to as a unicast frame.
func (r *Router) Send(ctx context.Context, to peer.ID, msg *wire.Message) error {
	if msg == nil || len(msg.Raw) > r.cfg.MaxMessageSize {
		return fmt.Errorf("raintree: sending to %s: %w", to, wire.ErrTooLarge)
	}
	r.mu.Lock()
	closed, view := r.closed, r.cur
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if _, ok := view.set.IndexOfPeer(to); !ok {
		return fmt.Errorf("raintree: sending to %s: %w", to, ErrNotValidator)
	}
	if to == r.host.ID() {
		return fmt.Errorf("raintree: sending to %s: cannot send to self", to)
	}
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind:      wire.RainTreeKind_RAIN_TREE_KIND_UNICAST,
		Data:      msg.Raw,
		SetHeight: view.set.Height(),
		SetHash:   []byte(view.hash),
	})
	if err != nil {
		return fmt.Errorf("raintree: encoding unicast: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	defer cancel()
	stop := context.AfterFunc(r.ctx, cancel)
	defer stop()
	if err := r.uni.Send(ctx, to, frame); err != nil {
		r.c.sendErrors.Add(1)
		if errors.Is(err, unicast.ErrClosed) { // lost a race with Close
			return ErrClosed
		}
		return fmt.Errorf("raintree: %w", err)
	}
	r.c.unicastSent.Add(1)
	return nil
}

// Stats returns the current counters, each read individually.
func (r *Router) Stats() Stats {
	return Stats{
		TreeSent:            r.c.treeSent.Load(),
		PartsRelayed:        r.c.partsRelayed.Load(),
		HandoversRefused:    r.c.handoversRefused.Load(),
		TreeReceived:        r.c.treeReceived.Load(),
		RedundantSent:       r.c.redundantSent.Load(),
		RedundantReceived:   r.c.redundantReceived.Load(),
		UnicastSent:         r.c.unicastSent.Load(),
		UnicastReceived:     r.c.unicastReceived.Load(),
		AcksSent:            r.c.acksSent.Load(),
		AcksReceived:        r.c.acksReceived.Load(),
		AcksUnexpected:      r.c.acksUnexpected.Load(),
		AckTimeouts:         r.c.ackTimeouts.Load(),
		Retries:             r.c.retries.Load(),
		GaveUp:              r.c.gaveUp.Load(),
		Duplicates:          r.c.duplicates.Load(),
		UnknownSetDelivered: r.c.unknownSetDelivered.Load(),
		SeenEvicted:         r.seen.Stats().Evicted,
		SendErrors:          r.c.sendErrors.Load(),
		SkippedDisconnected: r.c.skippedDisconnected.Load(),
		NotForwarded:        r.c.notForwarded.Load(),
		SkippedLaggards:     r.c.skippedLaggards.Load(),
		SlowHeads:           r.c.slowHeads.Load(),
		ProofsSent:          r.c.proofsSent.Load(),
		ProofsReceived:      r.c.proofsReceived.Load(),
		ProofsUnexpected:    r.c.proofsUnexpected.Load(),
		Dropped: DropStats{
			InboundFull:   r.c.inboundFull.Load(),
			OutboundFull:  r.c.outboundFull.Load(),
			DeliveryFull:  r.c.deliveryFull.Load(),
			ACKQueueFull:  r.c.ackQueueFull.Load(),
			Malformed:     r.c.malformed.Load(),
			BadSignature:  r.c.badSignature.Load(),
			Stale:         r.c.stale.Load(),
			TooLarge:      r.c.tooLarge.Load(),
			UnknownSender: r.c.unknownSender.Load(),
			UnknownSet:    r.c.unknownSet.Load(),
			BadReceipt:    r.c.badReceipt.Load(),
		},
	}
}

// Close stops the ACK timer, cancels every send, waits for the router's
// goroutines and closes the transport. It is idempotent and returns nil.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	r.timerGen++
	r.mu.Unlock()
	r.hops.close()
	r.ackq.Close()
	r.cancel()
	r.in.close()
	r.wg.Wait()
	return errors.Join(r.uni.Close(), r.ackUni.Close(), r.proofUni.Close())
}

// sendTree sends one broadcast frame. A tree frame (level >= 1) waits for
// an ACK when ACK is on; if it cannot even be sent, it is re-delegated at
// once instead of waiting for the timeout.
func (r *Router) sendTree(d delegation) error {
	to := d.view.set.At(d.target.Index).PeerID
	tree := d.target.Level > 0
	if passed, err := r.passOver(d, to); passed {
		return err
	}
	m := treeFrame(d)
	frame, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding broadcast frame: %w", err)
	}
	tracked, id := r.cfg.ACK && tree, uint64(0)
	if tracked {
		key := ackKey{peer: to, msgID: d.msg.ID, level: d.target.Level, span: frameSpan(m)}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return ErrClosed
		}
		// Registered before sending so that a quick ACK finds it; the
		// ACK timeout proper starts once the transport took the frame,
		// so dialing a fresh connection does not eat into it.
		d.sentAt = r.clock.Now()
		id = r.acks.Add(key, d.sentAt.Add(r.cfg.SendTimeout+r.cfg.ACKTimeout), d)
		r.armLocked()
		r.mu.Unlock()
	}
	timeout, paced := r.cfg.SendTimeout, r.paced(d)
	if paced {
		timeout = r.pace.timeout(len(frame), r.cfg)
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	err = r.uni.Send(ctx, to, frame)
	cancel()
	if paced {
		r.paceSent(d, to, timeout, err)
	}
	if tracked && err == nil {
		r.mu.Lock()
		if r.acks.Extend(id, r.clock.Now().Add(r.cfg.ACKTimeout)) {
			r.armLocked()
		}
		r.mu.Unlock()
	}
	if err != nil {
		r.c.sendErrors.Add(1)
		r.log.Debug("broadcast frame not sent", "to", to, "level", d.target.Level, "err", err)
		if tracked && r.ctx.Err() == nil {
			r.mu.Lock()
			_, waiting := r.acks.Remove(id)
			r.mu.Unlock()
			if waiting {
				r.c.ackTimeouts.Add(1)
				r.redelegate(d)
			}
		}
		return err
	}
	if tree {
		r.c.treeSent.Add(1)
	} else {
		r.c.redundantSent.Add(1)
	}
	return nil
}

// treeFrame is the broadcast frame of d.
func treeFrame(d delegation) *wire.RainTreeMessage {
	m := &wire.RainTreeMessage{
		Level:     uint32(d.target.Level),
		Data:      d.msg.Raw,
		Kind:      wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST,
		SetHeight: d.view.set.Height(),
		SetHash:   []byte(d.view.hash),
		MessageId: d.msg.ID[:],
		Mode:      string(d.mode),
	}
	if d.mode == ModeCover {
		m.SpanStart, m.SpanLen = uint32(d.target.Span.Start), uint32(d.target.Span.Len)
	}
	return m
}

// passOver hands d's span on without sending d to its head when the head
// is better avoided: one with no connection (skip: the span goes to the
// next validator, and ErrDisconnected is returned) or a recent laggard
// (passLaggard). It reports whether it did.
func (r *Router) passOver(d delegation, to peer.ID) (bool, error) {
	if d.target.Level > 0 && r.skip(d, to) {
		r.c.skippedDisconnected.Add(1)
		r.redelegate(d)
		return true, fmt.Errorf("%w: %s", ErrDisconnected, to)
	}
	return r.passLaggard(d, to), nil
}

// skip reports whether the tree frame d to is better re-delegated at once
// than dialled: with ACKs on, to is one of this node's targets in the set,
// which it keeps connected, yet it has had no connection for
// SkipDisconnectedAfter since this node took the set on. A validator that
// is down then costs its span no dial timeout; one that is merely between
// connections gets the message from gossip instead.
func (r *Router) skip(d delegation, to peer.ID) bool {
	if !r.cfg.ACK || d.mode != ModeCover || r.cfg.SkipDisconnectedAfter <= 0 {
		return false
	}
	if _, ok := d.view.targets[to]; !ok || r.clock.Now().Sub(d.view.since) < r.cfg.SkipDisconnectedAfter {
		return false
	}
	return r.host.Network().Connectedness(to) != network.Connected
}

// redelegate hands an unacknowledged target's span to the next validator
// in it, within MaxRetries.
func (r *Router) redelegate(d delegation) {
	n := d.view.set.Len()
	next, ok := Redelegate(n, d.target)
	if ok && next.Index == d.view.self {
		next, ok = Redelegate(n, next) // never delegate to ourselves
	}
	if d.mode != ModeCover || !ok || d.retries >= r.cfg.MaxRetries {
		r.c.gaveUp.Add(1)
		r.log.Debug("giving up on unacknowledged target", "msg_id", d.msg.ID, "index", d.target.Index,
			"span", d.target.Span, "retries", d.retries)
		return
	}
	d.retries, d.result, d.proof, d.batch = d.retries+1, nil, false, nil
	r.c.retries.Add(1)
	for _, t := range r.aroundUnconnected(d.view, next) {
		d.target = t
		r.enqueue(d)
	}
}

// maxConnectedScan bounds how far into a span aroundUnconnected looks for
// a connected validator.
const maxConnectedScan = 16

// aroundUnconnected keeps a re-delegated span off a dial: the next
// validator of a span is rarely one this node keeps connected, and its
// whole subtree would wait for the dial. If t's head is not connected and
// one of the next few validators of the span is, each validator before
// that one gets a span of itself alone (only it waits for its dial) and
// the connected one the rest of the span. The frames are as many as
// before: every validator still gets one.
func (r *Router) aroundUnconnected(v *setView, t Target) []Target {
	n := v.set.Len()
	connected := func(i int) bool {
		return r.host.Network().Connectedness(v.set.At(i).PeerID) == network.Connected
	}
	if t.Span.Len <= 1 || connected(t.Index) {
		return []Target{t}
	}
	for k := 1; k <= maxConnectedScan && k < t.Span.Len; k++ {
		i := (t.Span.Start + k) % n
		if i == v.self {
			break
		}
		if !connected(i) {
			continue
		}
		out := make([]Target, 0, k+1)
		out = append(out, Target{Index: i, Level: t.Level, Span: Span{Start: i, Len: t.Span.Len - k}})
		for j := range k {
			head := (t.Span.Start + j) % n
			out = append(out, Target{Index: head, Level: t.Level, Span: Span{Start: head, Len: 1}})
		}
		return out
	}
	return []Target{t}
}

// armLocked makes sure a timer fires at the earliest ACK deadline.
func (r *Router) armLocked() {
	next, ok := r.acks.Next()
	if !ok || (r.timer != nil && !next.Before(r.timerAt)) {
		return
	}
	if r.timer != nil {
		r.timer.Stop()
	}
	r.timerGen++
	gen := r.timerGen
	r.timerAt = next
	r.timer = r.clock.AfterFunc(max(next.Sub(r.clock.Now()), 0), func() { r.onTimer(gen) })
}

// onTimer runs on the clock's goroutine; it joins r.wg while it works, so
// Close waits for a call already past the closed check.
func (r *Router) onTimer(gen uint64) {
	r.mu.Lock()
	if r.closed || gen != r.timerGen {
		r.mu.Unlock()
		return // stopped or superseded
	}
	r.wg.Add(1)
	defer r.wg.Done()
	r.timer = nil
	expired := r.acks.Expire(r.clock.Now())
	r.armLocked()
	r.mu.Unlock()
	for _, d := range expired {
		if d.lateACK {
			continue // proven already; its ACK only had a receipt to offer
		}
		if d.proof {
			r.notForwarded(d)
			continue
		}
		r.c.ackTimeouts.Add(1)
		r.redelegate(d)
	}
}

// onFrame handles one frame on a stream's read loop: it settles an ACK at
// once and queues a payload frame of a validator for the workers. Decoding
// copies the payload out of the transport's buffer.
func (r *Router) onFrame(from peer.ID, data []byte) {
	m := &wire.RainTreeMessage{}
	if err := proto.Unmarshal(data, m); err != nil {
		r.invalid(&r.c.malformed, from, "undecodable frame", err)
		return
	}
	switch m.GetKind() {
	case wire.RainTreeKind_RAIN_TREE_KIND_ACK:
		r.onAck(from, m)
		return
	case wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, wire.RainTreeKind_RAIN_TREE_KIND_UNICAST:
	default:
		r.invalid(&r.c.malformed, from, "unknown frame kind", nil)
		return
	}
	if !r.knownValidator(from) {
		r.drop(&r.c.unknownSender, from, "frame from a non-validator", nil)
		return
	}
	if !r.in.push(from, inFrame{m: m, size: len(data)}) {
		r.drop(&r.c.inboundFull, from, "inbound queue full", nil)
	}
}

// onlyKind handles the frames of a protocol that carries one kind of
// frame (ACKs, proofs of forwarding): it passes those to handle and holds
// anything else against its sender.
func (r *Router) onlyKind(kind wire.RainTreeKind, handle func(peer.ID, *wire.RainTreeMessage)) func(peer.ID, []byte) {
	return func(from peer.ID, data []byte) {
		m := &wire.RainTreeMessage{}
		if err := proto.Unmarshal(data, m); err != nil || m.GetKind() != kind {
			r.invalid(&r.c.malformed, from, "not "+kind.String()+" on its own protocol", err)
			return
		}
		handle(from, m)
	}
}

// knownValidator reports whether id is in the current or a recent set.
func (r *Router) knownValidator(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return isMember(r.cur.set, id) || slices.ContainsFunc(r.recent, func(v *setView) bool { return isMember(v.set, id) })
}

func (r *Router) onBroadcast(from peer.ID, m *wire.RainTreeMessage) {
	// The mode is ours, never the frame's: a sender cannot make us skip
	// the seen memory or plan by another rule.
	mode := r.cfg.Mode
	level, span := int(m.GetLevel()), frameSpan(m)

	r.mu.Lock()
	view, cur := r.viewLocked(m.GetSetHash()), r.cur
	r.mu.Unlock()
	propagate := level > 0 && !r.cfg.Silent
	switch {
	case view == nil:
		if _, ok := cur.set.IndexOfPeer(from); !ok {
			r.drop(&r.c.unknownSet, from, "unknown validator set", nil)
			return
		}
		r.c.unknownSetDelivered.Add(1)
		propagate = false
	case !isMember(view.set, from):
		r.drop(&r.c.unknownSender, from, "sender is not a validator", nil)
		return
	case view.self < 0:
		propagate = false // the set was planned without us
	case mode == ModeCover && level > 0 && (span.Start != view.self || span.Len < 1 || span.Len > view.set.Len()):
		r.invalid(&r.c.malformed, from, "span does not start here", nil)
		return
	}
	// Only a validator's frame is worth a signature check.
	msg, ok := r.open(from, m.GetData())
	if !ok {
		return
	}
	if id, err := wire.ParseMessageID(m.GetMessageId()); err != nil || id != msg.ID {
		r.invalid(&r.c.malformed, from, "message ID does not match the envelope", err)
		return
	}
	if msg.IsUnicast() {
		r.invalid(&r.c.badSignature, from, "a unicast envelope broadcast", wire.ErrMisdirected)
		return
	}
	verdict := r.observe(frameKey(msg.ID, mode, level, span, propagate, view), msg)
	if verdict == dedup.TooOld || verdict == dedup.TooNew {
		r.drop(&r.c.stale, from, "outside the replay window", fmt.Errorf("%v", verdict))
		return
	}
	if level > 0 {
		r.c.treeReceived.Add(1)
		// An ACK takes over the span. A node that cannot plan on the
		// sender's set stays silent so the sender re-delegates; a Silent
		// node (fault injection) acknowledges and then does nothing.
		if r.cfg.ACK && (view != nil && view.self >= 0 || r.cfg.Silent) {
			r.ack(from, m)
		}
	} else {
		r.c.redundantReceived.Add(1)
	}
	if verdict == dedup.Duplicate {
		r.c.duplicates.Add(1)
		return
	}

	var targets []Target
	if propagate {
		n := view.set.Len()
		switch mode {
		case ModeReference:
			targets = ReferenceTargets(n, view.self, level)
		case ModeCover:
			targets = CoverTargets(n, span, level, r.cfg.LevelsPerHopFor(n, len(msg.Raw)))
		}
	}
	var v *vouch
	if len(targets) > 0 && r.cfg.ACK && mode == ModeCover && r.cfg.Paces(len(msg.Raw)) {
		v = &vouch{to: from, msgID: msg.ID, level: level, span: span}
	}
	ds := make([]delegation, len(targets))
	for i, t := range targets {
		ds[i] = delegation{view: view, mode: mode, target: t, msg: msg, vouch: v}
	}
	r.sendHops(msg, ds)
	r.deliver(from, msg, true, propagate && len(targets) == 0)
}

// frameKey is what the seen memory remembers a frame of message id by:
// the part of the tree it hands out (its span in cover mode, its level in
// reference mode, capped where the plan stops telling levels apart), and
// only the message for a frame this node does not pass on (a level-0
// copy, or one on a set it cannot plan on). What it does not use, a
// sender may set as it likes; each distinct key is one more entry charged
// to the message's origin, and enough of them would evict the origin's
// entries and raise its floor over its own honest frames.
func frameKey(id wire.MessageID, mode Mode, level int, span Span, propagate bool, view *setView) seenKey {
	switch {
	case !propagate:
		return seenKey{id: id}
	case mode == ModeCover:
		return seenKey{id: id, span: span}
	default:
		return seenKey{id: id, level: min(level, Levels(view.set.Len())+1)}
	}
}

func (r *Router) onUnicast(from peer.ID, m *wire.RainTreeMessage) {
	if !r.knownValidator(from) {
		r.drop(&r.c.unknownSender, from, "unicast from a non-validator", nil)
		return
	}
	msg, ok := r.open(from, m.GetData())
	if !ok {
		return
	}
	if msg.Recipient != r.self {
		r.invalid(&r.c.badSignature, from, "unicast envelope for another node", wire.ErrMisdirected)
		return
	}
	r.c.unicastReceived.Add(1)
	r.deliver(from, msg, false, false)
}

func (r *Router) onAck(from peer.ID, m *wire.RainTreeMessage) {
	key, err := keyOf(from, m, false)
	if err != nil {
		r.invalid(&r.c.malformed, from, "ACK without a message ID", err)
		return
	}
	r.mu.Lock()
	d, ok := r.acks.Ack(key)
	if ok && !d.lateACK && r.checksForwarding(d) {
		r.awaitProofLocked(from, d)
	}
	r.mu.Unlock()
	if !ok {
		r.c.acksUnexpected.Add(1)
		return
	}
	r.c.acksReceived.Add(1)
	if !d.lateACK {
		r.paceACKed(d)
	}
	if d.vouch != nil {
		r.vouchFor(from, d, m)
	}
}

// ack acknowledges a tree frame, echoing what identifies it to its sender.
func (r *Router) ack(to peer.ID, m *wire.RainTreeMessage) {
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind:      wire.RainTreeKind_RAIN_TREE_KIND_ACK,
		Level:     m.GetLevel(),
		MessageId: m.GetMessageId(),
		SpanStart: m.GetSpanStart(),
		SpanLen:   m.GetSpanLen(),
		Receipt:   r.receipt(m),
	})
	if err != nil {
		r.log.Warn("encoding ACK", "err", err)
		return
	}
	r.queueACKFrame(ackJob{to: to, frame: frame, via: r.ackUni, sent: &r.c.acksSent})
}

// open decodes and verifies an envelope at the router's edge. An envelope
// that is malformed or badly signed is held against the peer that sent it.
func (r *Router) open(from peer.ID, data []byte) (*wire.Message, bool) {
	msg, err := wire.Open(r.cfg.NetworkID, data, r.cfg.MaxMessageSize)
	switch {
	case err == nil:
		return msg, true
	case errors.Is(err, wire.ErrTooLarge):
		r.drop(&r.c.tooLarge, from, "envelope too large", err)
	case errors.Is(err, wire.ErrUnsigned), errors.Is(err, wire.ErrBadSignature), errors.Is(err, wire.ErrBadOrigin),
		errors.Is(err, wire.ErrNoCreatedAt), errors.Is(err, wire.ErrMisdirected):
		r.invalid(&r.c.badSignature, from, "envelope signature", err)
	default:
		r.invalid(&r.c.malformed, from, "bad envelope", err)
	}
	return nil, false
}

func (r *Router) drop(c *atomic.Uint64, from peer.ID, why string, err error) {
	c.Add(1)
	r.log.Debug("dropping frame", "from", from, "reason", why, "err", err)
}

// invalid drops a frame that only a faulty or hostile peer sends, and
// reports the peer through Config.OnInvalid.
func (r *Router) invalid(c *atomic.Uint64, from peer.ID, why string, err error) {
	r.drop(c, from, why, err)
	if r.cfg.OnInvalid != nil {
		r.cfg.OnInvalid(from, fmt.Errorf("%s: %w", why, errOrInvalid(err)))
	}
}

// Penalize counts a strike against p on the router's unicast protocol
// (unicast.Router.Penalize): enough of them close p's connections. Call it
// only after NewRouter has returned.
func (r *Router) Penalize(p peer.ID) { r.uni.Penalize(p) }

// ErrInvalidFrame is what Config.OnInvalid receives when a frame breaks a
// rule without a more specific error.
var ErrInvalidFrame = errors.New("raintree: invalid frame")

func errOrInvalid(err error) error {
	if err == nil {
		return ErrInvalidFrame
	}
	return err
}

// viewLocked finds the current or a recent set by hash.
func (r *Router) viewLocked(hash []byte) *setView {
	if string(hash) == r.cur.hash {
		return r.cur
	}
	for _, v := range r.recent {
		if string(hash) == v.hash {
			if r.cfg.RecentSetTTL > 0 && r.clock.Now().Sub(v.replaced) > r.cfg.RecentSetTTL {
				return nil // past its grace period
			}
			return v
		}
	}
	return nil
}

func (r *Router) observe(k seenKey, msg *wire.Message) dedup.Verdict {
	return r.seen.Observe(k, string(msg.Origin[:]), msg.CreatedAt)
}

func isMember(s *validators.Set, id peer.ID) bool {
	_, ok := s.IndexOfPeer(id)
	return ok
}

// keyOf is what an ACK (proof false) or a proof of forwarding from from
// settles: the frame it names.
func keyOf(from peer.ID, m *wire.RainTreeMessage, proof bool) (ackKey, error) {
	id, err := wire.ParseMessageID(m.GetMessageId())
	if err != nil {
		return ackKey{}, err
	}
	return ackKey{peer: from, msgID: id, level: int(m.GetLevel()), span: frameSpan(m), proof: proof}, nil
}

// frameSpan is the span a frame carries; zero for reference frames.
func frameSpan(m *wire.RainTreeMessage) Span {
	return Span{Start: int(m.GetSpanStart()), Len: int(m.GetSpanLen())}
}

// seenKey is what the seen memory remembers: (message, span) in cover
// mode, (message, level) in reference mode.
type seenKey struct {
	id    wire.MessageID
	level int
	span  Span
}

// UnicastStats returns the counters of the router's transport.
func (r *Router) UnicastStats() unicast.Stats { return r.uni.Stats() }

// ACKUnicastStats returns the counters of the ACK protocol's transport.
func (r *Router) ACKUnicastStats() unicast.Stats { return r.ackUni.Stats() }

// ProofUnicastStats returns the counters of the proof protocol's transport.
func (r *Router) ProofUnicastStats() unicast.Stats { return r.proofUni.Stats() }
