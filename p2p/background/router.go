package background

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/internal/peerqueue"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Sentinel errors callers branch on.
var (
	// ErrNoPeers means a Broadcast found no peer subscribed to the topic,
	// so the message would have reached nobody.
	ErrNoPeers = errors.New("background: no topic peers")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("background: router closed")
	// ErrNotStarted is returned by Broadcast and WaitReady before Start.
	ErrNotStarted = errors.New("background: router not started")
)

// Via says which path delivered an envelope.
type Via string

// The delivery paths.
const (
	ViaGossip  Via = "gossip"
	ViaUnicast Via = "unicast"
	// ViaSubmit is a broadcast a full node handed to this node directly
	// (Submit) for it to start: the handler relays it.
	ViaSubmit Via = "submit"
	// ViaRepair is a broadcast a full node of this validator's mesh sent
	// it because RainTree should have brought it by now (repair.go): the
	// handler delivers it and publishes it on gossip.
	ViaRepair Via = "repair"
)

// Handler receives every valid message addressed to this node, decoded and
// verified, except the node's own broadcasts. from is the peer that handed
// this copy over (for gossip a neighbour, for unicast the originator);
// msg.Origin is the authenticated originator. It is called from several
// goroutines (the gossip delivery loop, unicast streams, and in Silent mode
// pubsub's validation workers) and must not block for long: a slow handler
// fills the subscription buffer and messages are dropped
// (Stats.DroppedSubscriptionFull). parts is what a submission hands over
// (wire.Handover; the zero value for the whole ring, and for every other
// delivery).
type Handler func(from peer.ID, msg *wire.Message, via Via, parts wire.Handover)

type state int

const (
	stateNew state = iota
	stateStarted
	stateClosed
)

// Router is one node's membership in the background network. Use one
// Router per host: pubsub registers host-wide protocol handlers, so a
// second Router on the same host would take them over.
type Router struct {
	// held is the bytes of messages held for their forward delay.
	held      atomic.Int64
	host      host.Host
	self      identity.Address // the address of the host's key
	cfg       Config
	handler   Handler
	log       *slog.Logger
	topicName string
	uc        *unicast.Router
	c         counters
	direct    *peerLimiter
	// repairBudget bounds this full node's repairs to each validator, and
	// repairSlots the sends under way (repair.go).
	repairBudget *peerLimiter
	repairSlots  chan struct{}

	// scores is the last score snapshot; graylist carries peers to
	// disconnect from the score inspector to disconnectLoop.
	scoresMu sync.Mutex
	scores   map[peer.ID]float64
	graylist chan []peer.ID

	// ctx lives from New to Close and bounds every goroutine the Router
	// and its pubsub instance start.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the discovery loop for an early round

	mu    sync.Mutex
	state state
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	dht   *dht.IpfsDHT

	// bootstrap holds every peer to dial and keep connected: the union
	// of static (Config.BootstrapPeers and AddBootstrapPeers, kept for
	// the Router's lifetime) and validators (replaced by each
	// SetValidatorPeers).
	bootstrap  map[peer.ID]peer.AddrInfo
	static     map[peer.ID]struct{}
	validators map[peer.ID]struct{}
	// dialing holds the running redial loop of each bootstrap peer, so a
	// peer dropped from bootstrap can have its loop cancelled.
	dialing map[peer.ID]*dialer
	// dialers counts running redial goroutines, for tests.
	dialers atomic.Int64

	// catchUp is gossipsub's join-gap repair (nil for the other kinds);
	// set in Start, before any publication.
	catchUp *graftCatchUp
	// up takes large gossip writes in turn (uplink.go); nil when off.
	up atomic.Pointer[uplink]
	// have is what the validators in a full node's mesh said they have,
	// which ends its holds early and sets how long they last (release.go);
	// nil unless it holds.
	have *haveSignals
	// lazy holds the validator set's peers and a full node's parent
	// (lazy.go); later the messages waiting to be published (submit.go).
	lazy  lazySet
	later *laterQueue
	// proofs holds the proofs of started blocks this validator owes full
	// nodes, by full node (proof.go).
	proofs *peerqueue.Queues[wire.Proof]
	// connClosed tells later when a connection closes (submit.go).
	connClosed *network.NotifyBundle

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and registers the background unicast protocol on h.
// Gossip and discovery begin with Start.
func New(h host.Host, cfg Config, handler Handler) (*Router, error) {
	if h == nil {
		return nil, errors.New("background: nil host")
	}
	if handler == nil {
		return nil, errors.New("background: nil handler")
	}
	if cfg.PubSub == "" {
		cfg.PubSub = GossipSub
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Validate accepts any spelling ParsePubSubKind does; run the canonical one.
	cfg.PubSub, _ = ParsePubSubKind(string(cfg.PubSub))
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	self, err := identity.AddressFromPublicKey(h.Peerstore().PubKey(h.ID()))
	if err != nil {
		return nil, fmt.Errorf("background: host key: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Router{
		host:         h,
		self:         self,
		cfg:          cfg,
		handler:      handler,
		log:          log.With("component", "background", "network", cfg.NetworkID),
		topicName:    TopicName(cfg.NetworkID),
		ctx:          ctx,
		cancel:       cancel,
		kick:         make(chan struct{}, 1),
		bootstrap:    make(map[peer.ID]peer.AddrInfo),
		static:       make(map[peer.ID]struct{}),
		validators:   make(map[peer.ID]struct{}),
		dialing:      make(map[peer.ID]*dialer),
		direct:       newPeerLimiter(cfg.DirectRate, cfg.DirectBurst, cfg.MaxRateLimitedPeers),
		repairBudget: newPeerLimiter(repairsPerSecond, repairBurst, cfg.MaxRateLimitedPeers),
		repairSlots:  make(chan struct{}, maxRepairsInFlight),
		graylist:     make(chan []peer.ID, 1),
		later:        newLaterQueue(max(cfg.Gossip.MaxPending, 1)),
		proofs:       peerqueue.New[wire.Proof](cfg.Gossip.MaxProofQueuePerPeer, cfg.Gossip.MaxProofQueue),
	}
	r.connClosed = &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		r.later.recipientLeft(c.RemotePeer(), time.Now())
	}}
	if r.delaysForwarding() {
		r.have = newHaveSignals(r.topicName, r.lazy.contains, cfg.Gossip, &r.c.signalsFull)
	}
	uc := cfg.Unicast
	if uc.MaxMessageSize == 0 {
		uc.MaxMessageSize = cfg.unicastMaxMessageSize()
	}
	if uc.Logger == nil {
		uc.Logger = log
	}
	if r.uc, err = unicast.New(h, uc, r.onUnicast); err != nil {
		cancel()
		return nil, fmt.Errorf("background: starting unicast: %w", err)
	}
	r.addBootstrapLocked(cfg.BootstrapPeers, r.static)
	return r, nil
}

// Start joins the topic, subscribes, and starts the DHT, discovery and
// bootstrap dialing. It does not wait for any peer: dialing happens in the
// background, and WaitReady waits for peers when a caller needs them. ctx
// only bounds Start itself. A Router whose Start fails is closed.
func (r *Router) Start(ctx context.Context) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case stateClosed:
		return ErrClosed
	case stateStarted:
		return errors.New("background: already started")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("background: starting: %w", err)
	}
	defer func() {
		if err != nil {
			r.mu.Unlock()
			_ = r.Close()
			r.mu.Lock()
		}
	}()

	if r.cfg.DHT {
		r.dht, err = dht.New(r.host,
			dht.Mode(dht.ModeServer),
			dht.ProtocolPrefix(DHTProtocolPrefix(r.cfg.NetworkID)),
			dht.DisableValues(),
		)
		if err != nil {
			return fmt.Errorf("background: starting DHT: %w", err)
		}
	}
	if r.ps, err = r.newPubSub(); err != nil {
		return fmt.Errorf("background: starting %s: %w", r.cfg.PubSub, err)
	}
	validatorFn, validatorOpt := r.validator()
	if err = r.ps.RegisterTopicValidator(r.topicName, validatorFn, validatorOpt); err != nil {
		return fmt.Errorf("background: registering validator: %w", err)
	}
	if r.topic, err = r.ps.Join(r.topicName); err != nil {
		return fmt.Errorf("background: joining %s: %w", r.topicName, err)
	}
	if r.sub, err = r.topic.Subscribe(pubsub.WithBufferSize(r.cfg.SubscriptionBuffer)); err != nil {
		return fmt.Errorf("background: subscribing to %s: %w", r.topicName, err)
	}
	r.state = stateStarted
	r.wg.Go(r.deliverLoop)
	r.wg.Go(r.maintainLoop)
	r.wg.Go(r.disconnectLoop)
	r.wg.Go(r.laterLoop)
	r.advertiseProofs()
	r.advertiseBusy()
	r.host.Network().Notify(r.connClosed)
	if r.have != nil {
		r.wg.Go(r.rttLoop)
	}
	if u := r.up.Load(); u != nil && u.notices != nil {
		r.wg.Go(func() { r.busyLoop(u.notices) })
	}
	for id := range r.bootstrap {
		r.dialLocked(id)
	}
	r.log.Info("background started", "topic", r.topicName, "pubsub", r.cfg.PubSub, "dht", r.cfg.DHT, "silent", r.cfg.Silent)
	return nil
}

func (r *Router) newPubSub() (*pubsub.PubSub, error) {
	var gs *pubsub.GossipSubRouter
	tr := tracer{c: &r.c}
	if r.cfg.PubSub != RandomSub && r.cfg.PubSub != FloodSub {
		gs = pubsub.DefaultGossipSubRouter(r.host)
		tr.catchUp = newGraftCatchUp(gs, r.topicName, gossipSubParams(r.cfg.effectiveGossip()), &r.c.catchUpForgotten)
	}
	r.catchUp = tr.catchUp
	tr.have = r.have
	h, err := r.pubsubHost(&tr)
	if err != nil {
		return nil, err
	}
	opts := []pubsub.Option{
		// One signature per message: the envelope's, by its originator,
		// checked in validate. Pubsub messages carry no author, sequence
		// number or signature of their own (StrictNoSign), and are
		// identified by the envelope's message ID (docs/PROTOCOL.md).
		pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(r.messageID),
		// Pubsub remembers a message at least as long as the replay window
		// accepts it, so a replay inside the window is a gossip duplicate
		// and is not forwarded again.
		pubsub.WithSeenMessagesTTL(r.cfg.ReplayWindow + 2*r.cfg.ClockSkew),
		pubsub.WithMaxMessageSize(r.cfg.pubsubMaxMessageSize()),
		pubsub.WithValidateQueueSize(r.cfg.ValidateQueueSize),
		pubsub.WithPeerOutboundQueueSize(r.cfg.PeerOutboundQueueSize),
		pubsub.WithRawTracer(tr),
		pubsub.WithLogger(r.log.With("component", "pubsub")),
	}
	switch r.cfg.PubSub {
	case RandomSub:
		return pubsub.NewRandomSub(r.ctx, r.host, r.cfg.RandomSubSize, opts...)
	case FloodSub:
		return pubsub.NewFloodSub(r.ctx, r.host, opts...)
	default:
		// NewGossipSub, with the router built here so graftCatchUp can
		// reach it.
		g := r.cfg.effectiveGossip()
		opts = append(opts,
			gs.WithDefaultTagTracer(),
			pubsub.WithGossipSubParams(gossipSubParams(g)),
			pubsub.WithFloodPublish(g.FloodPublish),
		)
		opts = append(opts, r.scoreOptions()...)
		return pubsub.NewGossipSubWithRouter(r.ctx, h, gs, opts...)
	}
}

// pubsubHost is the host gossipsub writes through: under lazy gossip with
// LargeWriteHold, one whose large writes take turns (uplink.go), fed the
// peers' IDONTWANTs by tr. The simulator's stock baseline, not lazy,
// writes as pubsub does.
func (r *Router) pubsubHost(tr *tracer) (host.Host, error) {
	g := r.cfg.effectiveGossip()
	if r.cfg.PubSub == RandomSub || r.cfg.PubSub == FloodSub || !r.cfg.lazyNetwork() || g.LargeWriteHold <= 0 {
		return r.host, nil
	}
	u, err := newUplink(g, r.messageID, sha256.Size, r.ctx.Done())
	if err != nil {
		return nil, err
	}
	if g.AskHold > 0 {
		u.asks = newAsks(g, r.lazy.contains)
		if r.have != nil && g.BusyHold > 0 {
			u.notices = newBusyNotices(g.BusyHold)
			u.asks.began = u.notices.began
		}
		if g.BusyHold > 0 && g.ClearWait > 0 {
			u.clearance = newClearance(g.ClearWait, g.BusyHold, r.lazy.contains, r.IsMeshPeer, u.asks.receiving)
			u.asks.started, u.asks.ended = u.clearance.began, u.clearance.ended
		}
	}
	if u.busy != nil {
		u.askers = newClearAsks(g.ClearWait, r.supports(ClearProtocolID(r.cfg.NetworkID)), r.uc.Send)
	}
	r.up.Store(u)
	tr.up = u
	return uplinkHost{Host: r.host, u: u}, nil
}

// gossipSubParams overlays g on pubsub's defaults. Dout and Dscore are
// derived so pubsub's invariants (Dout < Dlo, Dout < D/2, Dscore <= Dhi)
// hold for any valid g.
func gossipSubParams(g GossipParams) pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi, p.Dlazy = g.D, g.Dlo, g.Dhi, g.Dlazy
	p.Dout = max(0, min(p.Dout, g.Dlo-1, g.D/2-1))
	p.Dscore = min(p.Dscore, g.D)
	p.HeartbeatInterval = g.HeartbeatInterval
	p.HistoryLength, p.HistoryGossip = g.HistoryLength, g.HistoryGossip
	if g.LazyAmongValidators {
		p.GossipFactor = 0 // Dlazy (LazyDlazy) is exact under lazy gossip
		// Pruning keeps the D best-scoring peers, none at random: a full
		// node keeps its validators (keptScore) even when more than
		// pubsub's default 4 of them grafted it (lazy.go), less the Dout
		// slots pubsub still fills with peers it dialled when too few of
		// those kept are.
		p.Dscore = g.D
	}
	return p
}

// messageID is the gossip message ID: the message ID of the envelope in
// the frame (wire.BackgroundMessageID). Two nodes that publish the same
// signed envelope (a relay of a RainTree message, a retry) publish the same
// message, and the second copy stops at the first hop. A copy with another
// signature has another ID, so an invalid copy can never make pubsub or
// its IDONTWANT suppress the genuine one.
func (r *Router) messageID(m *pb.Message) string {
	return wire.BackgroundMessageID(r.cfg.NetworkID, m.GetData())
}

// gossipID is messageID for a message already opened.
func (r *Router) gossipID(msg *wire.Message) string {
	id := wire.GossipID(r.cfg.NetworkID, msg.Envelope)
	return string(id[:])
}

// validate runs before pubsub delivers or forwards a message, including
// our own publications. A frame that does not parse, is not signed or
// whose signature fails is rejected, which costs its sender score. A valid
// message created outside the replay window is ignored: an honest peer
// with a skewed clock, or one relaying an old message, should not be
// penalised for it, but it goes no further.
func (r *Router) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	m, err := wire.OpenBackground(r.cfg.NetworkID, msg.GetData(), r.cfg.MaxMessageSize)
	if err != nil {
		countRejection(&r.c.gossipRejected, err)
		r.log.Debug("rejecting gossip", "via", msg.ReceivedFrom, "err", err)
		return pubsub.ValidationReject
	}
	if m.IsUnicast() {
		countRejection(&r.c.gossipRejected, wire.ErrMisdirected)
		r.log.Debug("rejecting a unicast envelope on gossip", "via", msg.ReceivedFrom)
		return pubsub.ValidationReject
	}
	if msg.ReceivedFrom != r.host.ID() {
		if err := r.fresh(m.CreatedAt); err != nil {
			r.c.gossipStale.Add(1)
			r.log.Debug("ignoring gossip", "via", msg.ReceivedFrom, "err", err)
			return pubsub.ValidationIgnore
		}
	}
	msg.ValidatorData = m
	if r.cfg.Silent && msg.ReceivedFrom != r.host.ID() {
		// Ignore keeps the message out of the subscription, the message
		// cache and every forwarding path, so hand it over here instead.
		r.c.silentWithheld.Add(1)
		r.deliver(msg.ReceivedFrom, m, ViaGossip, wire.Handover{})
		return pubsub.ValidationIgnore
	}
	return pubsub.ValidationAccept
}

// ErrStale is a message created outside the replay window.
var ErrStale = errors.New("background: message outside the replay window")

// fresh checks a creation time against the replay window. The Module's
// deduper makes the final call; this keeps gossip from forwarding what
// every node would refuse.
func (r *Router) fresh(created time.Time) error {
	now := time.Now()
	if created.Before(now.Add(-r.cfg.ReplayWindow-r.cfg.ClockSkew)) || created.After(now.Add(r.cfg.ClockSkew)) {
		return fmt.Errorf("%w: created %v, now %v", ErrStale, created.UTC(), now.UTC())
	}
	return nil
}

func countRejection(c *rejectionCounters, err error) {
	switch {
	case errors.Is(err, wire.ErrEmpty):
		c.empty.Add(1)
	case errors.Is(err, wire.ErrTooLarge):
		c.tooLarge.Add(1)
	case errors.Is(err, wire.ErrUnsigned), errors.Is(err, wire.ErrBadSignature), errors.Is(err, wire.ErrBadOrigin),
		errors.Is(err, wire.ErrNoCreatedAt), errors.Is(err, wire.ErrMisdirected):
		c.signature.Add(1)
	case errors.Is(err, wire.ErrNoContent), errors.Is(err, wire.ErrZeroNonce):
		c.invalidEnvelope.Add(1)
	default:
		c.malformed.Add(1)
	}
}

// deliverLoop is the subscription's only reader. It must keep up: pubsub
// drops messages for a full subscription buffer.
func (r *Router) deliverLoop() {
	self := r.host.ID()
	for {
		msg, err := r.sub.Next(r.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == self {
			continue
		}
		var m *wire.Message
		switch v := msg.ValidatorData.(type) {
		case *wire.Message:
			m = v
		case handed:
			m = v.msg
		default:
			// Every message on the topic passed validate, which sets it.
			r.log.Error("gossip message without validated envelope", "via", msg.ReceivedFrom)
			continue
		}
		if m.Origin == r.self {
			r.later.cameBack(m.ID)
		}
		if _, done := msg.ValidatorData.(handed); !done {
			r.deliver(msg.ReceivedFrom, m, ViaGossip, wire.Handover{})
		}
	}
}

func (r *Router) deliver(from peer.ID, env *wire.Message, via Via, parts wire.Handover) {
	if via != ViaUnicast {
		r.c.deliveredGossip.Add(1)
	} else {
		r.c.deliveredUnicast.Add(1)
	}
	r.handler(from, env, via, parts)
}

// onUnicast handles a direct message. The frame is copied, since the
// transport reuses its buffer; the envelope must be addressed to us.
func (r *Router) onUnicast(from peer.ID, data []byte) {
	if !r.direct.allow(from) {
		r.c.droppedRateLimited.Add(1)
		return
	}
	u, err := wire.OpenUnicast(r.cfg.NetworkID, bytes.Clone(data), r.cfg.MaxMessageSize)
	m := u.Message
	switch {
	case err == nil && u.Proof != nil:
		r.onProof(from, *u.Proof)
		return
	case err == nil && u.Busy > 0:
		if up := r.up.Load(); up != nil {
			up.busy.notice(from, u.Busy, time.Now())
			up.askers.answered(from, false)
		}
		return
	case err == nil && u.AskToSend:
		if up := r.up.Load(); up != nil {
			r.onAsk(up.clearance, from)
		}
		return
	case err == nil && u.ClearToSend:
		if up := r.up.Load(); up != nil {
			up.askers.answered(from, true)
		}
		return
	case err == nil && u.Repair:
		r.onRepair(from, m)
		return
	case err == nil && !m.IsUnicast() && r.cfg.lazyNetwork():
		r.c.submissions.Add(1)
		r.deliver(from, m, ViaSubmit, u.Handover)
		return
	case err == nil && m.Recipient != r.self:
		err = fmt.Errorf("%w: for %s", wire.ErrMisdirected, m.Recipient)
	}
	if err != nil {
		countRejection(&r.c.unicastRejected, err)
		r.log.Debug("dropping unicast frame", "from", from, "err", err)
		r.uc.Penalize(from)
		return
	}
	r.deliver(from, m, ViaUnicast, wire.Handover{})
}

// topicIfStarted returns the topic, or ErrNotStarted / ErrClosed.
func (r *Router) topicIfStarted() (*pubsub.Topic, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case stateNew:
		return nil, ErrNotStarted
	case stateClosed:
		return nil, ErrClosed
	}
	return r.topic, nil
}

// Broadcast publishes a signed message (see wire.Seal) to the whole
// network.
//
// It returns ErrNoPeers when no peer is known to be subscribed: pubsub only
// sends to peers whose subscription it has seen, so such a publish would
// silently reach nobody. Right after a connection the peer's subscription
// takes one round trip to arrive; WaitReady covers that. A Broadcast goes
// to the mesh (to every known topic peer with GossipParams.FloodPublish);
// a peer that joins the mesh within the gossip window is offered it.
//
// Broadcasting the same message again within pubsub's seen-message window
// (ReplayWindow + 2*ClockSkew) is a no-op, because the gossip message ID
// is the envelope's.
func (r *Router) Broadcast(ctx context.Context, msg *wire.Message) (err error) {
	defer func() {
		if err != nil {
			r.c.publishErrors.Add(1)
		}
	}()
	topic, err := r.topicIfStarted()
	if err != nil {
		return err
	}
	if msg == nil || len(msg.Raw) > r.cfg.MaxMessageSize {
		return fmt.Errorf("broadcast: %w", wire.ErrTooLarge)
	}
	frame, err := wire.EncodeBackground(msg.Raw)
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	if len(topic.ListPeers()) == 0 {
		return fmt.Errorf("broadcast on %s: %w (%d connected peers, none subscribed yet)",
			r.topicName, ErrNoPeers, len(r.host.Network().Peers()))
	}
	r.catchUp.onPublish(r.gossipID(msg))
	if err := topic.Publish(ctx, frame); err != nil {
		return fmt.Errorf("broadcast on %s: %w", r.topicName, err)
	}
	r.c.published.Add(1)
	return nil
}

// Send delivers a message signed by this node (see wire.Seal) to one peer
// over background unicast.
// It works before Start. A nil error means the frame reached the
// transport, not that the peer handled it.
func (r *Router) Send(ctx context.Context, to peer.ID, msg *wire.Message) error {
	r.mu.Lock()
	closed := r.state == stateClosed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return r.sendSubmission(ctx, to, msg, wire.Handover{})
}

// sendSubmission sends msg to one peer over background unicast with the
// handover h (the zero one for a direct send, or a whole-ring submission).
func (r *Router) sendSubmission(ctx context.Context, to peer.ID, msg *wire.Message, h wire.Handover) error {
	if msg == nil || len(msg.Raw) > r.cfg.MaxMessageSize {
		return fmt.Errorf("sending to %s: %w", to, wire.ErrTooLarge)
	}
	frame, err := wire.EncodeSubmission(msg.Raw, h)
	if err != nil {
		return fmt.Errorf("sending to %s: %w", to, err)
	}
	if err := r.uc.Send(ctx, to, frame); err != nil {
		if errors.Is(err, unicast.ErrClosed) {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		return fmt.Errorf("background: %w", err)
	}
	return nil
}

// TopicPeers returns the peers known to be subscribed to the topic: the
// peers a Broadcast is sent to directly under FloodPublish.
func (r *Router) TopicPeers() []peer.ID {
	topic, err := r.topicIfStarted()
	if err != nil {
		return nil
	}
	return topic.ListPeers()
}

// readyPollInterval is how often WaitReady looks at the topic peers.
const readyPollInterval = 20 * time.Millisecond

// WaitReady blocks until at least minPeers peers are subscribed to the
// topic, ctx ends, or the Router closes. "Ready" means a Broadcast will be
// offered to at least minPeers peers: to the mesh once the next heartbeat
// has built it, or directly with FloodPublish. It does not mean the whole
// network is reachable.
func (r *Router) WaitReady(ctx context.Context, minPeers int) error {
	t := time.NewTicker(readyPollInterval)
	defer t.Stop()
	for {
		topic, err := r.topicIfStarted()
		if err != nil {
			return err
		}
		n := len(topic.ListPeers())
		if n >= minPeers {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d topic peers, have %d: %w", minPeers, n, ctx.Err())
		case <-r.ctx.Done():
			return ErrClosed
		case <-t.C:
		}
	}
}

// Close leaves the topic and stops pubsub, the DHT, discovery, dialing and
// unicast, waiting for every goroutine the Router started. It is idempotent
// and safe to call before Start.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.state = stateClosed
		sub, topic, ps, d := r.sub, r.topic, r.ps, r.dht
		r.mu.Unlock()

		var errs []error
		if sub != nil {
			sub.Cancel()
		}
		if topic != nil {
			if err := topic.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing topic: %w", err))
			}
		}
		if ps != nil {
			// Fails harmlessly if Start stopped before registering it.
			_ = ps.UnregisterTopicValidator(r.topicName)
		}
		r.host.Network().StopNotify(r.connClosed)
		r.host.RemoveStreamHandler(SubmitProofProtocolID(r.cfg.NetworkID))
		r.host.RemoveStreamHandler(BusyProtocolID(r.cfg.NetworkID))
		r.host.RemoveStreamHandler(ClearProtocolID(r.cfg.NetworkID))
		r.host.RemoveStreamHandler(RepairProtocolID(r.cfg.NetworkID))
		r.proofs.Close()
		r.cancel()
		r.wg.Wait()
		if d != nil {
			if err := d.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing DHT: %w", err))
			}
		}
		if err := r.uc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing unicast: %w", err))
		}
		r.log.Debug("background closed")
		if len(errs) > 0 {
			r.closeErr = fmt.Errorf("background: %w", errors.Join(errs...))
		}
	})
	return r.closeErr
}
