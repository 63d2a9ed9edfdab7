package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/dedup"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Sentinel errors callers branch on.
var (
	ErrNotStarted     = errors.New("p2p module not started")
	ErrClosed         = errors.New("p2p module closed")
	ErrUnknownPeer    = errors.New("unknown peer address")
	ErrAlreadyStarted = errors.New("p2p module already started")
	ErrNoRouter       = errors.New("no router can carry this message")
	ErrNoPeers        = errors.New("no peers to broadcast to")
)

// RouterName says which router brought a delivery.
type RouterName string

// The routers.
const (
	RouterRainTree   RouterName = "raintree"
	RouterBackground RouterName = "background"
)

// Role is what a node is in the current validator set.
type Role string

// The roles.
const (
	RoleValidator Role = "validator"
	RoleFullNode  Role = "fullnode"
)

// Delivery is one envelope handed to the application, with who made it and
// how it came.
type Delivery struct {
	Envelope *wire.Envelope
	// ID is the message ID the Module deduplicates on.
	ID wire.MessageID
	// From is the authenticated originator: the address of the key that
	// signed the envelope, whichever router or relay brought it.
	From identity.Address
	// CreatedAt is the originator's creation time (its clock).
	CreatedAt time.Time
	Router    RouterName
	Broadcast bool // false for a unicast
	// Relay is the peer that handed this copy over: a neighbour for a
	// broadcast, the originator itself for a unicast.
	Relay      peer.ID
	ReceivedAt time.Time
}

// Router is the seam both routers satisfy: the Module does not care which
// one it holds. Messages are signed and encoded once, by the Module.
type Router interface {
	Broadcast(ctx context.Context, msg *wire.Message) error
	Send(ctx context.Context, to peer.ID, msg *wire.Message) error
	Close() error
}

// Module is one node's P2P layer.
type Module struct {
	cfg      Config
	log      *slog.Logger
	dedup    *dedup.Deduper[wire.MessageID]
	out      chan Delivery
	ownsHost bool

	mu   sync.RWMutex
	host host.Host
	set  *validators.Set
	rain *raintree.Router // nil unless this node is a validator
	// rainCancel ends the deliveries of the current RainTree router.
	rainCancel context.CancelFunc
	bg         *background.Router
	started    bool
	closed     bool
	notifiee   *network.NotifyBundle
	// running, liveRain and liveBg are started && !closed, rain and bg for
	// the routers' handlers (liveRouters), which must not take mu: Close
	// holds it while it waits for them.
	running  atomic.Bool
	liveRain atomic.Pointer[raintree.Router]
	liveBg   atomic.Pointer[background.Router]

	// ctx ends when the Module closes; it unblocks deliveries waiting on a
	// full channel. Set in New and never replaced, so it needs no lock.
	ctx    context.Context
	cancel context.CancelFunc
	// carried are the deliveries a closed RainTree router left waiting
	// (hand), each on a goroutine of its own until the application takes
	// it or the Module closes.
	carried carriers

	// neighbours are the RainTree neighbours protected in the connection
	// manager (empty unless this node is a validator).
	neighbours map[peer.ID]struct{}

	// The address books: the validators of the set in force, and the
	// peers connected now (learn, forget).
	bookMu        sync.Mutex // apart from mu: libp2p notifications take it
	validatorBook map[identity.Address]peer.ID
	book          map[identity.Address]peer.ID

	// trusted is the set in force, read by the unicast routers' stream
	// handlers without m.mu (applySetLocked may wait for them).
	trusted   atomic.Pointer[validators.Set]
	rc        rcmgrCounters
	allowlist *allowlist
	// depths are the set in force's tree depths, for hopsAfter.
	depths atomic.Pointer[planDepths]

	delivered    [2]atomic.Uint64 // by router: raintree, background
	invalidPeers atomic.Uint64
	sendErrors   atomic.Uint64
	// headDials paces and runs a full node's dials to its handover heads
	// (Close waits for them); headDialErrors counts the failed ones.
	headDials      headDials
	headDialErrors atomic.Uint64
}

// New validates cfg and returns a Module ready to Start.
func New(cfg Config) (*Module, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := cfg.routerConfigs(); err != nil {
		return nil, err
	}
	d, err := dedup.New[wire.MessageID](dedup.Config{Capacity: cfg.DedupCapacity, Window: cfg.ReplayWindow, Skew: cfg.ClockSkew})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Module{
		ctx:    ctx,
		cancel: cancel,
		cfg:    cfg,
		log:    log.With("node", cfg.Key.Address.String()[:8]),
		dedup:  d,
		out:    make(chan Delivery, cfg.DeliveryBuffer),
		book:   map[identity.Address]peer.ID{},

		headDials: headDials{every: cfg.HandoverRedial},
	}, nil
}

// Start creates the host (unless one was given), loads the validator set and
// starts the routers. It does not wait for peers; see WaitReady.
func (m *Module) Start(ctx context.Context) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.started {
		return ErrAlreadyStarted
	}
	set, err := m.cfg.Validators.ValidatorSet(ctx, m.cfg.Height)
	if err != nil {
		return fmt.Errorf("loading validator set at height %d: %w", m.cfg.Height, err)
	}
	m.host = m.cfg.Host
	if m.host == nil {
		h, err := newHost(m.cfg, &m.rc)
		if err != nil {
			return err
		}
		m.host, m.ownsHost = h, true
	}
	defer func() {
		if err != nil { // a failed start leaves nothing running; the Module is spent
			_ = m.stopLocked()
			m.closed = true
		}
	}()
	m.allowlist = newAllowlist(m.host.Network().ResourceManager())
	m.notifiee = &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { m.learn(c.RemotePeer()) },
		DisconnectedF: func(n network.Network, c network.Conn) { m.forget(n, c.RemotePeer()) },
	}
	m.host.Network().Notify(m.notifiee)

	if m.cfg.Routers != RoutersRainTreeOnly {
		_, bgCfg, err := m.cfg.routerConfigs()
		if err != nil {
			return err
		}
		bgCfg.Unicast.Trusted = m.isValidatorPeer
		bgCfg.RainTreeValidator = m.cfg.Routers == RoutersBoth && set.Contains(m.cfg.Key.Address)
		bgCfg.HopsAfter, bgCfg.HopOf = m.hopsAfter, m.hopOf
		if m.bg, err = background.New(hintedHost{m.host, m}, bgCfg, m.onBackground); err != nil {
			return fmt.Errorf("creating background router: %w", err)
		}
		if err := m.bg.Start(ctx); err != nil {
			return fmt.Errorf("starting background router: %w", err)
		}
	}
	if err := m.applySetLocked(set); err != nil {
		return err
	}
	m.started = true
	m.liveBg.Store(m.bg)
	m.running.Store(true)
	m.log.Info("p2p module started", "role", m.roleLocked(), "peer_id", m.host.ID(), "addrs", m.host.Addrs(), "validators", set.Len())
	return nil
}

// UpdateValidators replaces the validator set: RainTree's view follows it
// (broadcasts in flight keep the set they were planned with), validators
// become bootstrap peers of the background router, and the node starts or
// stops its RainTree router when its own role changes.
func (m *Module) UpdateValidators(set *validators.Set) error {
	if set == nil {
		return fmt.Errorf("%w: nil validator set", validators.ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if !m.started {
		return ErrNotStarted
	}
	return m.applySetLocked(set)
}

func (m *Module) applySetLocked(set *validators.Set) error {
	m.set = set
	m.trusted.Store(set)
	m.depths.Store(newPlanDepths(set, m.cfg.RainTree))
	m.allowlist.update(set, m.host.ID())
	m.bookMu.Lock()
	m.validatorBook = make(map[identity.Address]peer.ID, set.Len())
	for _, v := range set.Validators() {
		m.validatorBook[v.Address] = v.PeerID
	}
	m.bookMu.Unlock()
	// Validators' addresses are hints for dials on demand (hintedHost),
	// not a dial list.
	isValidator := set.Contains(m.cfg.Key.Address) && m.cfg.Routers != RoutersBackgroundOnly
	keep := m.updateNeighboursLocked(set, isValidator)
	if m.bg != nil {
		m.bg.SetValidatorPeers(keep)
		m.bg.SetValidatorIDs(set.Hash(), m.validatorIDs(set))
	}
	if !isValidator {
		m.dialHeads(set, m.handoverTargets(m.bg, set, 0))
	}

	switch {
	case isValidator && m.rain == nil:
		rtCfg, _, err := m.cfg.routerConfigs()
		if err != nil {
			return err
		}
		rtCfg.Unicast.Trusted = m.isValidatorPeer
		// Its deliveries wait on their own context, so leaving the set can
		// cancel them before Close waits for the router's read loops, even
		// while the application is not reading Deliveries.
		rctx, rcancel := context.WithCancel(m.ctx)
		bg := m.bg // read here: the handler must not take m.mu (Close holds it while waiting for handlers)
		// The router's own unicast strikes the peer too, so repeated invalid
		// frames end in disconnection; the router is known once NewRouter
		// returns, and frames cannot be judged before.
		var penalizer atomic.Pointer[raintree.Router]
		rtCfg.OnInvalid = func(from peer.ID, err error) {
			m.onInvalid(RouterRainTree, from, err)
			if rt := penalizer.Load(); rt != nil {
				rt.Penalize(from)
			}
		}
		// A broadcast goes to gossip once this node's tree frames of it
		// have left (handToGossip), whichever way it came.
		rtCfg.OnTreeSent = func(msg *wire.Message) { m.handToGossip(rctx, bg, msg) }
		// RainTree's inbound blocks hold gossip's IWANTs back too.
		var rh host.Host = hintedHost{m.host, m}
		if bg != nil {
			rh = bg.FollowReads(rh)
		}
		r, err := raintree.NewRouter(rh, m.cfg.Key.Address, set, rtCfg, func(from peer.ID, msg *wire.Message, broadcast, _ bool) {
			m.deliver(rctx, RouterRainTree, from, msg, broadcast)
		})
		if err != nil {
			rcancel()
			return fmt.Errorf("starting raintree router: %w", err)
		}
		penalizer.Store(r)
		m.rain, m.rainCancel = r, rcancel
		m.liveRain.Store(r)
	case isValidator:
		m.rain.SetValidators(set)
	case m.rain != nil:
		m.liveRain.Store(nil)
		m.rainCancel()
		if err := m.rain.Close(); err != nil {
			m.log.Warn("closing raintree router after leaving the validator set", "err", err)
		}
		m.rain = nil
	}
	return nil
}

// isValidatorPeer reports whether p is a validator of the set in force.
func (m *Module) isValidatorPeer(p peer.ID) bool {
	_, ok := m.trusted.Load().IndexOfPeer(p)
	return ok
}

// HandleEvent reacts to the application's events: a *validators.Set (or
// ValidatorSetChanged) replaces the set, NewHeight loads the set for a
// height from the provider.
func (m *Module) HandleEvent(ctx context.Context, ev any) error {
	switch e := ev.(type) {
	case *validators.Set:
		return m.UpdateValidators(e)
	case ValidatorSetChanged:
		return m.UpdateValidators(e.Set)
	case NewHeight:
		set, err := m.cfg.Validators.ValidatorSet(ctx, e.Height)
		if err != nil {
			return fmt.Errorf("loading validator set at height %d: %w", e.Height, err)
		}
		return m.UpdateValidators(set)
	default:
		return fmt.Errorf("unsupported event %T", ev)
	}
}

// ValidatorSetChanged is the event an application sends when the set
// changes (a validator added or removed).
type ValidatorSetChanged struct{ Set *validators.Set }

// NewHeight is the event an application sends when it reaches a height
// whose validator set the provider knows.
type NewHeight struct{ Height uint64 }

// Deliveries is where received envelopes arrive, each exactly once. Read it
// promptly: while it is full, routers wait. It is never closed; stop
// reading when Done is closed.
func (m *Module) Deliveries() <-chan Delivery { return m.out }

// Done is closed when the Module closes.
func (m *Module) Done() <-chan struct{} { return m.ctx.Done() }

// Address is this node's address.
func (m *Module) Address() identity.Address { return m.cfg.Key.Address }

// Host is the libp2p host (nil before Start).
func (m *Module) Host() host.Host {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.host
}

// Role reports whether this node is a validator in the current set.
func (m *Module) Role() Role {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.roleLocked()
}

func (m *Module) roleLocked() Role {
	if m.set.Contains(m.cfg.Key.Address) {
		return RoleValidator
	}
	return RoleFullNode
}

// ValidatorSet is the set in force.
func (m *Module) ValidatorSet() *validators.Set {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.set
}

// Broadcast wraps msg in a new envelope, signs it and broadcasts it. It
// returns the envelope, so callers can follow it (wire.ComputeID gives its
// message ID).
func (m *Module) Broadcast(ctx context.Context, msg proto.Message) (*wire.Envelope, error) {
	env, err := wire.NewEnvelope(msg)
	if err != nil {
		return nil, err
	}
	return env, m.BroadcastEnvelope(ctx, env)
}

// BroadcastEnvelope signs env as this node's (an envelope already signed
// is verified and kept) and broadcasts it: on RainTree and the background
// router from a validator, on the background router only from a full node.
// It succeeds if at least one router took the envelope; the other router's
// failure is logged and counted.
func (m *Module) BroadcastEnvelope(ctx context.Context, env *wire.Envelope) error {
	msg, err := m.seal(env, identity.Address{})
	if err != nil {
		return fmt.Errorf("broadcast: %w", err)
	}
	rain, bg, err := m.routers()
	if err != nil {
		return err
	}
	if rain == nil && bg == nil {
		return fmt.Errorf("broadcast: %w", ErrNoRouter)
	}
	m.dedup.Observe(msg.ID, string(msg.Origin[:]), msg.CreatedAt) // our own envelope must not come back to us
	switch {
	case rain != nil && bg != nil && bg.Lazy():
		return m.broadcastLazy(ctx, rain, bg, msg)
	case rain == nil && bg != nil && bg.LazyNetwork():
		if err := m.submit(ctx, bg, msg); err != nil {
			m.sendErrors.Add(1)
			return fmt.Errorf("broadcast: background: %w", err)
		}
		return nil
	}
	// Both routers start at once: RainTree's first sends may wait on a dial,
	// and gossip must not wait behind them.
	var rainErr, bgErr error
	var wg sync.WaitGroup
	if rain != nil {
		wg.Go(func() {
			switch err := rain.Broadcast(ctx, msg); {
			case err != nil:
				rainErr = fmt.Errorf("raintree: %w", err)
			case m.ValidatorSet().Len() <= 1: // a lone validator's tree reaches nobody
				rainErr = fmt.Errorf("raintree: %w", ErrNoPeers)
			}
		})
	}
	if bg != nil {
		if err := bg.Broadcast(ctx, msg); err != nil {
			bgErr = fmt.Errorf("background: %w", err)
		}
	}
	wg.Wait()
	routers := 2
	if rain == nil || bg == nil {
		routers = 1
	}
	var errs []error
	for _, err := range []error{rainErr, bgErr} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		m.sendErrors.Add(uint64(len(errs)))
		if len(errs) == routers {
			return fmt.Errorf("broadcast: %w", errors.Join(errs...))
		}
		m.log.Warn("broadcast reached only one router", "err", errors.Join(errs...))
	}
	return nil
}

// Send wraps msg in a new envelope, signs it and sends it to addr.
func (m *Module) Send(ctx context.Context, addr identity.Address, msg proto.Message) (*wire.Envelope, error) {
	env, err := wire.NewEnvelope(msg)
	if err != nil {
		return nil, err
	}
	return env, m.SendEnvelope(ctx, addr, env)
}

// SendEnvelope signs env as this node's, addressed to addr (an envelope
// already signed must be addressed to addr), and sends it: over RainTree's
// unicast when both ends are validators, over the background router's
// unicast otherwise. Only addr accepts it, so it cannot be replayed to
// anyone else.
func (m *Module) SendEnvelope(ctx context.Context, addr identity.Address, env *wire.Envelope) error {
	msg, err := m.seal(env, addr)
	if err != nil {
		return fmt.Errorf("send to %s: %w", addr, err)
	}
	if addr == m.cfg.Key.Address {
		return fmt.Errorf("send to %s: cannot send to self", addr)
	}
	rain, bg, err := m.routers()
	if err != nil {
		return err
	}
	id, ok := m.resolve(addr)
	if !ok {
		return fmt.Errorf("send to %s: %w", addr, ErrUnknownPeer)
	}
	var r Router
	switch {
	case rain != nil && m.ValidatorSet().Contains(addr):
		r = rain
	case bg != nil:
		r = bg
	default:
		return fmt.Errorf("send to %s: %w", addr, ErrNoRouter)
	}
	if err := r.Send(ctx, id, msg); err != nil {
		m.sendErrors.Add(1)
		return fmt.Errorf("send to %s: %w", addr, err)
	}
	return nil
}

// RouterFor names the router a unicast to addr would use.
func (m *Module) RouterFor(addr identity.Address) RouterName {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.rain != nil && m.set.Contains(addr) {
		return RouterRainTree
	}
	return RouterBackground
}

// liveRouters is routers for the routers' handlers, without m.mu: a
// handler waiting for it while Close held it, waiting for the handler,
// hung Close.
func (m *Module) liveRouters() (*raintree.Router, *background.Router, error) {
	if !m.running.Load() {
		return nil, nil, ErrClosed
	}
	return m.liveRain.Load(), m.liveBg.Load(), nil
}

func (m *Module) routers() (*raintree.Router, *background.Router, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	switch {
	case m.closed:
		return nil, nil, ErrClosed
	case !m.started:
		return nil, nil, ErrNotStarted
	}
	return m.rain, m.bg, nil
}

// resolve finds the peer ID of an address: validators and connected peers
// are in the books; otherwise the peerstore is searched.
func (m *Module) resolve(addr identity.Address) (peer.ID, bool) {
	m.bookMu.Lock()
	id, ok := m.validatorBook[addr]
	if !ok {
		id, ok = m.book[addr]
	}
	m.bookMu.Unlock()
	h := m.Host()
	if ok {
		return id, true
	}
	for _, p := range h.Peerstore().Peers() {
		if a, err := m.addressOf(p); err == nil && a == addr {
			if h.Network().Connectedness(p) == network.Connected {
				m.learn(p)
			}
			return p, true
		}
	}
	return "", false
}

// learn records the address of a peer we are connected to.
func (m *Module) learn(id peer.ID) {
	addr, err := m.addressOf(id)
	if err != nil {
		return
	}
	m.bookMu.Lock()
	m.book[addr] = id
	m.bookMu.Unlock()
}

// forget drops a peer whose last connection closed from the book of
// connected peers, which therefore holds no more than the connections do:
// peers that connect once each under a new ID cannot grow it.
func (m *Module) forget(n network.Network, id peer.ID) {
	if n.Connectedness(id) == network.Connected {
		return
	}
	addr, err := m.addressOf(id)
	if err != nil {
		return
	}
	m.bookMu.Lock()
	if m.book[addr] == id {
		delete(m.book, addr)
	}
	m.bookMu.Unlock()
}

// seal signs (unless signed) and encodes env for the routers, addressed
// to to (zero for a broadcast).
func (m *Module) seal(env *wire.Envelope, to identity.Address) (*wire.Message, error) {
	return wire.Seal(m.cfg.NetworkID, env, m.cfg.Key.Private, to, time.Now(), m.cfg.MaxMessageSize)
}

func (m *Module) onBackground(from peer.ID, msg *wire.Message, via background.Via, parts wire.Handover) {
	switch via {
	case background.ViaSubmit:
		m.relaySubmission(from, msg, parts)
		return
	case background.ViaRepair:
		m.takeRepair(from, msg)
		return
	}
	m.deliver(m.ctx, RouterBackground, from, msg, via == background.ViaGossip)
}

// onInvalid counts a peer's protocol violation a router detected (for
// example a relay that altered a signed envelope) and reports it to
// Config.OnInvalidPeer.
func (m *Module) onInvalid(r RouterName, from peer.ID, err error) {
	m.invalidPeers.Add(1)
	m.log.Debug("peer sent an invalid message", "router", r, "peer", from, "err", err)
	if m.cfg.OnInvalidPeer != nil {
		m.cfg.OnInvalidPeer(r, from, err)
	}
}

// deliver deduplicates a verified message on its ID and hands it to the
// application. Routers have already checked and forwarded it. A message
// created outside the replay window, or at or below the deduper's floor,
// is refused and counted. It gives up when ctx ends (the Module or that
// router closing).
func (m *Module) deliver(ctx context.Context, r RouterName, relay peer.ID, msg *wire.Message, broadcast bool) {
	if m.firstSight(r, relay, msg) {
		m.hand(ctx, r, relay, msg, broadcast)
	}
}

// firstSight records msg in the deduper and reports whether this is its
// first valid sighting.
func (m *Module) firstSight(r RouterName, relay peer.ID, msg *wire.Message) bool {
	return m.sight(r, relay, msg) == dedup.First
}

// sight records msg in the deduper and returns its verdict; a message
// outside the replay window is logged.
func (m *Module) sight(r RouterName, relay peer.ID, msg *wire.Message) dedup.Verdict {
	v := m.dedup.Observe(msg.ID, string(msg.Origin[:]), msg.CreatedAt)
	if v != dedup.First && v != dedup.Duplicate {
		m.log.Debug("refusing message outside the replay window", "router", r, "relay", relay, "verdict", v, "created", msg.CreatedAt)
	}
	return v
}

// hand gives a message seen for the first time to the application.
func (m *Module) hand(ctx context.Context, r RouterName, relay peer.ID, msg *wire.Message, broadcast bool) {
	d := Delivery{
		Envelope: msg.Envelope, ID: msg.ID, From: msg.Origin, CreatedAt: msg.CreatedAt,
		Router: r, Broadcast: broadcast, Relay: relay, ReceivedAt: time.Now(),
	}
	select {
	case m.out <- d:
		m.countDelivered(r)
	case <-ctx.Done():
		// The router's deliveries ended (this node left the set) while
		// the Module runs. The message is seen, so no other copy will
		// bring it: it waits on, but not on the router's read loop.
		if m.ctx.Err() == nil {
			m.carried.carry(func() {
				select {
				case m.out <- d:
					m.countDelivered(r)
				case <-m.ctx.Done():
				}
			})
		}
	}
}

func (m *Module) countDelivered(r RouterName) {
	if r == RouterRainTree {
		m.delivered[0].Add(1)
	} else {
		m.delivered[1].Add(1)
	}
}

// carriers runs goroutines that end with the Module (carried deliveries,
// head dials), and waits for them.
type carriers struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	closed bool
}

// carry runs f on a goroutine of its own, unless the carriers closed.
func (c *carriers) carry(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.wg.Go(f)
	}
}

// close waits for the goroutines, and runs no more.
func (c *carriers) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

// addressOf derives a peer's address (identity.AddressFromPublicKey) from
// the public key its ID embeds or, for RSA and ECDSA IDs, the key the
// peerstore recorded during the handshake. It takes no lock: the host is set
// before any router runs and never replaced.
func (m *Module) addressOf(id peer.ID) (identity.Address, error) {
	if a, err := identity.AddressFromPeerID(id); err == nil {
		return a, nil
	}
	pub := m.host.Peerstore().PubKey(id)
	if pub == nil || !id.MatchesPublicKey(pub) {
		return identity.Address{}, fmt.Errorf("%w: no public key known for peer %s", identity.ErrBadKey, id)
	}
	return identity.AddressFromPublicKey(pub)
}

// Close stops both routers and, if the Module created it, the host. It is
// idempotent and waits for every goroutine the Module started.
func (m *Module) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	return m.stopLocked()
}

func (m *Module) stopLocked() error {
	var errs []error
	m.cancel()
	m.running.Store(false)
	m.liveRain.Store(nil)
	m.liveBg.Store(nil)
	m.headDials.close()
	if m.rain != nil {
		errs = append(errs, m.rain.Close())
		m.rain = nil
	}
	if m.bg != nil {
		errs = append(errs, m.bg.Close())
		m.bg = nil
	}
	if m.host != nil && m.notifiee != nil {
		m.host.Network().StopNotify(m.notifiee)
	}
	if m.ownsHost && m.host != nil {
		errs = append(errs, m.host.Close())
	}
	m.carried.close()
	return errors.Join(errs...)
}

// Status is a snapshot of the module for operators.
type Status struct {
	Address            string            `json:"address"`
	PeerID             string            `json:"peer_id"`
	Role               Role              `json:"role"`
	NetworkID          string            `json:"network_id"`
	ListenAddrs        []string          `json:"listen_addrs"`
	Peers              map[string]int    `json:"peers"`
	ValidatorSetHeight uint64            `json:"validator_set_height"`
	ValidatorSetSize   int               `json:"validator_set_size"`
	Delivered          map[string]uint64 `json:"delivered"`
	Duplicates         uint64            `json:"duplicates_suppressed"`
	// Connections counts connected peers by kind (ConnRainTreeNeighbour,
	// ConnMesh, ConnOther); a peer counts once, under the first kind that
	// applies.
	Connections map[string]int `json:"connections"`
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	PeerID    string   `json:"peer_id"`
	Address   string   `json:"address"`
	Validator bool     `json:"validator"`
	Addrs     []string `json:"addrs"`
}

// Status returns a snapshot; before Start it has only the identity.
func (m *Module) Status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s := Status{
		Address:   m.cfg.Key.Address.String(),
		PeerID:    m.cfg.Key.PeerID.String(),
		NetworkID: m.cfg.NetworkID,
		Role:      m.roleLocked(),
		Peers:     map[string]int{string(RouterRainTree): 0, string(RouterBackground): 0},
		Delivered: map[string]uint64{
			string(RouterRainTree):   m.delivered[0].Load(),
			string(RouterBackground): m.delivered[1].Load(),
		},
		Duplicates:       m.dedup.Duplicates(),
		ValidatorSetSize: m.set.Len(),
	}
	if m.set != nil {
		s.ValidatorSetHeight = m.set.Height()
	}
	if m.host == nil || m.closed {
		return s
	}
	for _, a := range m.host.Addrs() {
		s.ListenAddrs = append(s.ListenAddrs, a.String())
	}
	if m.rain != nil {
		for _, p := range m.host.Network().Peers() {
			if _, ok := m.set.IndexOfPeer(p); ok {
				s.Peers[string(RouterRainTree)]++
			}
		}
	}
	if m.bg != nil {
		s.Peers[string(RouterBackground)] = len(m.bg.TopicPeers())
	}
	s.Connections = m.connectionsLocked()
	return s
}

// Peers lists the connected peers.
func (m *Module) Peers() []PeerInfo {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.host == nil || m.closed {
		return nil
	}
	var out []PeerInfo
	for _, p := range m.host.Network().Peers() {
		pi := PeerInfo{PeerID: p.String()}
		if a, err := m.addressOf(p); err == nil {
			pi.Address = a.String()
		}
		_, pi.Validator = m.set.IndexOfPeer(p)
		for _, a := range m.host.Peerstore().Addrs(p) {
			pi.Addrs = append(pi.Addrs, a.String())
		}
		out = append(out, pi)
	}
	return out
}
