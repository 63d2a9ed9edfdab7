package sim

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Network-mode defaults and limits.
const (
	DefaultBroadcastTimeout = 5 * time.Second
	DefaultGap              = 20 * time.Millisecond
	DefaultReadyTimeout     = 20 * time.Second
	// DefaultDegree is the sim command's --degree: bootstrap peers per node.
	DefaultDegree = 16
	// MaxNetworkNodes bounds validators plus full nodes: every node is a
	// full libp2p host with its routers, in this process, at about
	// 2-4 MB each with --degree wiring (BENCHMARKS.md).
	MaxNetworkNodes = 10_000
	// MaxPayloadSize bounds NetConfig.PayloadSize, well under the
	// envelope limit.
	MaxPayloadSize = 1 << 20
	simNetworkID   = "rainp2p-sim"
)

// ErrLossUnsupported is returned for a non-zero NetConfig.Loss.
var ErrLossUnsupported = errors.New("packet loss is not supported: mocknet links only model latency and bandwidth, " +
	"and libp2p streams are reliable, so loss on a real link shows up as retransmission delay rather than lost messages; " +
	"model a lossy network with --latency, or lost nodes with --down-validators/--silent-validators")

// NetConfig configures RunNetwork.
type NetConfig struct {
	// Validators and FullNodes size the network; validators need at least 1.
	Validators, FullNodes int
	// DownValidators are in the set but never started. SilentValidators
	// receive and deliver, and never forward on any router.
	DownValidators, SilentValidators int
	// Broadcasts per strategy, sent one after another, each from a random
	// live node (a random live validator for RainTree alone).
	Broadcasts int
	// Strategies to compare; nil means NetworkStrategies.
	Strategies []Strategy
	// Seed drives keys, faults, origins and topology (and per-pair
	// latencies in virtual time).
	Seed uint64
	// PayloadSize is the content size of each broadcast in bytes.
	PayloadSize int
	// Latency is the one-way delay of every link (the least one when
	// Virtual.LatencyMax draws them per pair).
	Latency time.Duration
	// Loss must be 0; see ErrLossUnsupported.
	Loss float64
	// Degree is how many random bootstrap peers each node is configured
	// with, as an operator would; the node dials them itself, and every
	// other connection comes from its own routers (a validator's RainTree
	// targets, dials on demand) under its connection manager, trimmed as
	// on a real host. 0 (or n-1 and more) instead connects every pair
	// before the routers start, O(n²) connections.
	Degree int
	// BroadcastTimeout bounds the wait for one broadcast to reach every
	// target before sending the next. The wait ends sooner once no payload
	// has been written or delivered anywhere for a quiet period (a few link
	// latencies, at least 200ms, plus the ACK timeout for ACK strategies
	// and a heartbeat for gossipsub); deliveries after it still count.
	// Default DefaultBroadcastTimeout, or 20ms per node if that is longer.
	BroadcastTimeout time.Duration
	// Gap is the pause between broadcasts.
	Gap time.Duration
	// ReadyTimeout bounds the wait for gossip topic peers. Default
	// DefaultReadyTimeout, or 40ms per node if that is longer.
	ReadyTimeout time.Duration
	// GossipSettle is how long the network runs, once every node sees its
	// gossip topic peers, before the first broadcast: time for gossipsub
	// to graft its meshes and prune those oversubscribed. 0 means 1.4 s,
	// two of the default stack's 700 ms heartbeats (1.4 of stock
	// gossipsub's 1 s). The first broadcasts of a large network can
	// meet meshes still being pruned (at 1,000 nodes a validator briefly
	// without a mesh got one hundreds of milliseconds late, stock
	// gossipsub's too; six heartbeats removed it, ADR 0002): a longer
	// settle measures a network past its start-up.
	GossipSettle time.Duration
	// ConnSettle is how long after a network starts its connections are
	// counted at the earliest. 0 means, for --degree wiring on mocknet,
	// the connection manager's grace period plus one check, so every
	// start-up connection could have been trimmed; otherwise no wait.
	ConnSettle time.Duration
	// HeapProfile, when set, is a path prefix: each strategy writes a heap
	// profile to <prefix>-<strategy>.pprof once its connections are
	// counted, before the network is torn down.
	HeapProfile string
	// tweak, set by tests, edits every node's configuration last.
	tweak func(*p2p.Config)
	// Virtual, when set, runs on simulated QUIC links in virtual time
	// instead of mocknet in wall-clock time; see VirtualLinks. The
	// default BroadcastTimeout is then DefaultVirtualBroadcastTimeout.
	Virtual *VirtualLinks
}

func (c NetConfig) validate() error {
	if err := checkCounts(c.Validators, c.DownValidators, c.SilentValidators, c.Broadcasts); err != nil {
		return err
	}
	switch {
	case c.FullNodes < 0:
		return fmt.Errorf("%w: full nodes must not be negative, got %d", ErrBadConfig, c.FullNodes)
	case c.Validators+c.FullNodes > MaxNetworkNodes:
		return fmt.Errorf("%w: network mode runs at most %d nodes in-process, got %d (use --plan for large sets)",
			ErrBadConfig, MaxNetworkNodes, c.Validators+c.FullNodes)
	case c.PayloadSize < 1 || c.PayloadSize > MaxPayloadSize:
		return fmt.Errorf("%w: payload size must be in [1, %d], got %d", ErrBadConfig, MaxPayloadSize, c.PayloadSize)
	case c.Latency < 0:
		return fmt.Errorf("%w: latency must not be negative, got %v", ErrBadConfig, c.Latency)
	case c.Loss < 0 || c.Loss >= 1 || c.Loss != c.Loss:
		return fmt.Errorf("%w: loss must be in [0, 1), got %v", ErrBadConfig, c.Loss)
	case c.Loss != 0:
		return fmt.Errorf("%w: %w", ErrBadConfig, ErrLossUnsupported)
	case c.Degree < 0:
		return fmt.Errorf("%w: degree must not be negative, got %d", ErrBadConfig, c.Degree)
	case c.BroadcastTimeout < 0 || c.Gap < 0 || c.ReadyTimeout < 0 || c.GossipSettle < 0:
		return fmt.Errorf("%w: timeouts, gap and gossip settle must not be negative", ErrBadConfig)
	}
	if c.Virtual != nil {
		if newVirtualFabric == nil {
			return ErrVirtualOutsideTest
		}
		return c.Virtual.validate(c.Latency)
	}
	return nil
}

// simNode is one node of the simulated network; the same identities,
// roles and faults serve every strategy.
type simNode struct {
	key       *identity.Key
	addr      ma.Multiaddr
	validator bool
	down      bool
	silent    bool
	// bootstrap are the node's --degree bootstrap peers, which it dials
	// itself; nil when the run connects every pair instead.
	bootstrap []peer.AddrInfo
}

// scenario is everything strategies share.
type scenario struct {
	cfg       NetConfig
	nodes     []simNode // validators first, in set order, then full nodes
	set       *validators.Set
	wired     bool         // nodes dial their bootstrap peers; false connects every pair
	latency   *pairLatency // virtual time only
	originAll []int        // per broadcast, any live node
	originVal []int        // per broadcast, a live validator
	payload   []byte
}

// RunNetwork runs every strategy on its own fresh in-process network built
// from the same scenario, and measures it. Progress lines go to progress
// when it is not nil.
func RunNetwork(ctx context.Context, cfg NetConfig, progress io.Writer) (Result, error) {
	if cfg.Strategies == nil {
		cfg.Strategies = mustParseStrategies(NetworkStrategies)
	}
	// Every node shares this machine's cores, so a big network needs
	// longer: the waits grow with the node count. A broadcast's wait still
	// ends as soon as every target has it, or the network goes quiet.
	nodes := time.Duration(cfg.Validators + cfg.FullNodes)
	if cfg.BroadcastTimeout == 0 {
		cfg.BroadcastTimeout = max(DefaultBroadcastTimeout, nodes*20*time.Millisecond)
		if cfg.Virtual != nil {
			cfg.BroadcastTimeout = DefaultVirtualBroadcastTimeout
		}
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = max(DefaultReadyTimeout, nodes*40*time.Millisecond)
	}
	if cfg.GossipSettle == 0 {
		cfg.GossipSettle = 2 * background.DefaultGossipParams().HeartbeatInterval
	}
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	if progress == nil {
		progress = io.Discard
	}
	sc, err := newScenario(cfg)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Mode:             ModeNetwork,
		Validators:       cfg.Validators,
		FullNodes:        cfg.FullNodes,
		Broadcasts:       cfg.Broadcasts,
		DownValidators:   cfg.DownValidators,
		SilentValidators: cfg.SilentValidators,
		Seed:             cfg.Seed,
		TimeBase:         TimeWall,
		Links:            &LinkModel{LatencyMS: ms(cfg.Latency), LatencyMaxMS: ms(cfg.Latency)},
	}
	if v := cfg.Virtual; v != nil {
		w := v.withDefaults()
		res.TimeBase = TimeVirtual
		res.Links.LatencyMaxMS = ms(max(cfg.Latency, w.LatencyMax))
		res.Links.UplinkBPS, res.Links.DownlinkBPS = ptr(w.UplinkBPS), ptr(w.DownlinkBPS)
	}
	for i, s := range cfg.Strategies {
		label := fmt.Sprintf("strategy %d/%d %s", i+1, len(cfg.Strategies), s.Name())
		fmt.Fprintf(progress, "sim: %s: starting network\n", label)
		start := time.Now()
		resetPeakRSS()
		sr, err := sc.run(ctx, s, label, progress)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", s.Name(), err)
		}
		sr.PeakRSSBytes = peakRSS()
		if res.TimeBase == TimeWall { // in a synctest bubble, time.Now is virtual
			sr.WallMS = ptr(ms(time.Since(start)))
		}
		fmt.Fprintf(progress, "sim: %s: done in %v %s time, delivery %s\n", label,
			time.Since(start).Round(time.Millisecond), res.TimeBase, pct(sr.DeliveryRatio))
		res.Strategies = append(res.Strategies, sr)
	}
	return res, nil
}

func newScenario(cfg NetConfig) (*scenario, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	keys := make([]*identity.Key, cfg.Validators+cfg.FullNodes)
	for i := range keys {
		k, err := seededKey(rng)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	vals := make([]validators.Validator, cfg.Validators)
	addrs := make(map[identity.Address]ma.Multiaddr, len(keys))
	for i, k := range keys {
		a, err := nodeAddr(cfg, i)
		if err != nil {
			return nil, fmt.Errorf("node address: %w", err)
		}
		addrs[k.Address] = a
		if i < cfg.Validators {
			vals[i] = validators.Validator{Address: k.Address, PublicKey: k.Private.GetPublic(), Multiaddrs: []ma.Multiaddr{a}}
		}
	}
	set, err := validators.NewSet(1, vals)
	if err != nil {
		return nil, fmt.Errorf("building validator set: %w", err)
	}
	sc := &scenario{cfg: cfg, set: set, payload: make([]byte, cfg.PayloadSize)}
	if cfg.Virtual != nil {
		sc.latency = newPairLatency(cfg, len(keys))
	}
	_, _ = crand.Read(sc.payload)
	// Faults are drawn over set positions, so index i is validator i of the
	// sorted ring, as in plan mode.
	f := chooseFaults(rng, cfg.Validators, cfg.DownValidators, cfg.SilentValidators)
	for i := range cfg.Validators {
		v := set.At(i)
		k := keys[slices.IndexFunc(keys[:cfg.Validators], func(k *identity.Key) bool { return k.Address == v.Address })]
		sc.nodes = append(sc.nodes, simNode{key: k, addr: addrs[k.Address], validator: true, down: f.down[i], silent: f.silent[i]})
	}
	for _, k := range keys[cfg.Validators:] {
		sc.nodes = append(sc.nodes, simNode{key: k, addr: addrs[k.Address]})
	}
	var liveAll []int
	for i, n := range sc.nodes {
		if !n.down {
			liveAll = append(liveAll, i)
		}
	}
	for range cfg.Broadcasts {
		sc.originAll = append(sc.originAll, liveAll[rng.IntN(len(liveAll))])
		sc.originVal = append(sc.originVal, f.live[rng.IntN(len(f.live))])
	}
	if n := len(sc.nodes); cfg.Degree > 0 && cfg.Degree < n-1 {
		sc.wired = true
		for a := range n {
			for _, j := range rng.Perm(n - 1)[:cfg.Degree] {
				b := j
				if b >= a {
					b++
				}
				sc.nodes[a].bootstrap = append(sc.nodes[a].bootstrap,
					peer.AddrInfo{ID: sc.nodes[b].key.PeerID, Addrs: []ma.Multiaddr{sc.nodes[b].addr}})
			}
		}
	}
	return sc, nil
}

// seededKey derives a node key from rng, so a seed fixes the validator
// ring's order and every peer ID.
func seededKey(rng *rand.Rand) (*identity.Key, error) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return identity.KeyFromPrivate(priv)
}

// nodeAddr is node i's address: a mocknet TCP address, or its listen
// address on the simulated network.
func nodeAddr(cfg NetConfig, i int) (ma.Multiaddr, error) {
	if cfg.Virtual != nil {
		return simnetAddr(i)
	}
	return ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
}

// newFabric makes the network for one strategy's run.
func (sc *scenario) newFabric() fabric {
	if sc.cfg.Virtual != nil {
		return newVirtualFabric(sc.cfg, sc.latency)
	}
	return newMocknetFabric(sc.cfg)
}

// inRun reports whether node i takes part in strategy s: down validators
// never do, full nodes only when gossip runs.
func (sc *scenario) inRun(s Strategy, i int) bool {
	n := sc.nodes[i]
	return !n.down && (n.validator || !s.RainTreeOnly())
}

// firstDeliveries holds, per node and broadcast, when the node first
// delivered it (zero: never).
type firstDeliveries struct {
	mu        sync.Mutex
	nonces    map[uint64]int
	at        [][]time.Time
	via       [][]p2p.RouterName
	isTarget  []bool
	remaining []atomic.Int64
	done      []chan struct{}
	// deliveries counts every delivery, duplicates and other broadcasts'
	// included: a sign of life for waitQuiet.
	deliveries atomic.Int64
}

func (fd *firstDeliveries) record(node int, d p2p.Delivery) {
	fd.deliveries.Add(1)
	fd.mu.Lock()
	j, ok := fd.nonces[d.Envelope.GetNonce()]
	first := ok && fd.at[node][j].IsZero()
	if first {
		fd.at[node][j], fd.via[node][j] = d.ReceivedAt, d.Router
	}
	fd.mu.Unlock()
	if first && fd.isTarget[node] && fd.remaining[j].Add(-1) == 0 {
		close(fd.done[j])
	}
}

// run builds one strategy's network, runs the broadcasts and tears it all
// down.
func (sc *scenario) run(ctx context.Context, s Strategy, label string, progress io.Writer) (_ StrategyResult, err error) {
	cfg := sc.cfg
	fab := sc.newFabric()
	defer func() {
		if cerr := fab.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	counter := &wireCounter{rainProtocol: raintree.ProtocolID(simNetworkID), backgroundUnicast: background.UnicastProtocolID(simNetworkID)}
	vals := make(map[peer.ID]bool, sc.set.Len())
	for _, v := range sc.set.Validators() {
		vals[v.PeerID] = true
	}
	counter.validators.Store(&vals)

	modules := make([]*p2p.Module, len(sc.nodes))
	defer func() {
		if d, ok := fab.(interface{ allDown() }); ok {
			d.allDown()
			// Mocknet streams ignore deadlines, so a send to a node that
			// closed before us would block our Close forever: close every
			// connection first, which resets their streams.
			for _, m := range modules {
				if m != nil {
					for _, c := range m.Host().Network().Conns() {
						_ = c.Close()
					}
				}
			}
		}
		for _, m := range modules {
			if m != nil {
				if cerr := m.Close(); cerr != nil && err == nil {
					err = fmt.Errorf("closing module: %w", cerr)
				}
			}
		}
	}()
	quiet := slog.New(slog.DiscardHandler)
	for i, n := range sc.nodes {
		if !sc.inRun(s, i) {
			continue
		}
		h, err := fab.host(i, n)
		if err != nil {
			return StrategyResult{}, err
		}
		mc := sc.nodeConfig(s, n)
		mc.Host = &countingHost{Host: h, c: counter}
		mc.Logger = quiet
		m, err := p2p.New(mc)
		if err != nil {
			return StrategyResult{}, fmt.Errorf("configuring node %d: %w", i, err)
		}
		modules[i] = m
	}
	if err := fab.start(); err != nil {
		return StrategyResult{}, err
	}
	started := time.Now()
	for i, m := range modules {
		if m != nil {
			if err := m.Start(ctx); err != nil {
				return StrategyResult{}, fmt.Errorf("starting node %d: %w", i, err)
			}
			if u, ok := fab.(interface{ nodeStarted(int) }); ok {
				u.nodeStarted(i)
			}
		}
	}
	if !sc.wired {
		if err := sc.connect(ctx, fab, modules); err != nil {
			return StrategyResult{}, err
		}
	}

	fd := &firstDeliveries{
		nonces:    map[uint64]int{},
		at:        make([][]time.Time, len(sc.nodes)),
		via:       make([][]p2p.RouterName, len(sc.nodes)),
		isTarget:  make([]bool, len(sc.nodes)),
		remaining: make([]atomic.Int64, cfg.Broadcasts),
		done:      make([]chan struct{}, cfg.Broadcasts),
	}
	stop := make(chan struct{})
	var collectors sync.WaitGroup
	defer func() { close(stop); collectors.Wait() }()
	for i, m := range modules {
		fd.at[i] = make([]time.Time, cfg.Broadcasts)
		fd.via[i] = make([]p2p.RouterName, cfg.Broadcasts)
		if m == nil {
			continue
		}
		fd.isTarget[i] = true
		collectors.Go(func() {
			for {
				select {
				case d := <-m.Deliveries():
					fd.record(i, d)
				case <-stop:
					return
				}
			}
		})
	}

	if s.Gossip != "" {
		if err := sc.waitGossipReady(ctx, modules, label, progress); err != nil {
			return StrategyResult{}, err
		}
	}

	origins := sc.originAll
	if s.RainTreeOnly() {
		origins = sc.originVal
	}
	targets := 0
	for _, t := range fd.isTarget {
		if t {
			targets++
		}
	}
	sent := make([]time.Time, cfg.Broadcasts)
	// Some targets may never be reached (reference holes, subtrees behind
	// silent validators), so a broadcast is also over once the network has
	// been quiet for a while; late deliveries are still recorded.
	idle := sc.quietPeriod(s)
	activity := func() int64 {
		return counter.payloadMsgs.Load() + counter.routerReadBytes.Load() + fd.deliveries.Load()
	}
	before := counter.snapshot()
	for j, o := range origins {
		fd.done[j] = make(chan struct{})
		fd.remaining[j].Store(int64(targets - 1)) // the origin is no target of its own broadcast
		env, err := wire.NewEnvelope(wrapperspb.Bytes(sc.payload))
		if err != nil {
			return StrategyResult{}, err
		}
		fd.mu.Lock()
		fd.nonces[env.GetNonce()] = j
		fd.mu.Unlock()
		if targets-1 == 0 {
			close(fd.done[j])
		}
		sent[j] = time.Now()
		if err := modules[o].BroadcastEnvelope(ctx, env); err != nil {
			fmt.Fprintf(progress, "sim: %s: broadcast %d/%d from node %d failed: %v\n", label, j+1, cfg.Broadcasts, o, err)
		}
		end, err := waitQuiet(ctx, fd.done[j], activity, idle, sent[j].Add(cfg.BroadcastTimeout))
		if err != nil {
			return StrategyResult{}, err
		}
		note := ""
		switch end {
		case endQuiet:
			note = fmt.Sprintf(" (no payload traffic for %v)", idle)
		case endDeadline:
			note = fmt.Sprintf(" (timeout %v)", cfg.BroadcastTimeout)
		}
		fd.mu.Lock()
		b := sc.tallyBroadcast(fd, j, o, sent[j])
		fd.mu.Unlock()
		last := "none"
		if d, ok := b.last(); ok {
			last = d.Round(time.Microsecond).String()
		}
		fmt.Fprintf(progress, "sim: %s: broadcast %d/%d from a %s: %d/%d reached, the last after %s%s\n", label, j+1, cfg.Broadcasts,
			b.OriginRole, b.Reached, b.Targets, last, note)
		if cfg.Virtual != nil {
			// Drain: duplicates still queued on slow uplinks would
			// otherwise delay the next broadcast by an amount set by
			// Gap. Waiting costs virtual time, not wall time.
			if _, err := waitQuiet(ctx, nil, activity, settleQuiet(cfg), time.Now().Add(cfg.BroadcastTimeout)); err != nil {
				return StrategyResult{}, err
			}
		}
		if err := sleep(ctx, cfg.Gap); err != nil {
			return StrategyResult{}, err
		}
	}
	// Settle: wait until no payload has been written for a few link
	// latencies, so late duplicates are counted.
	if _, err := waitQuiet(ctx, nil, activity, settleQuiet(cfg), time.Now().Add(cfg.BroadcastTimeout)); err != nil {
		return StrategyResult{}, err
	}
	traffic := counter.snapshot().sub(before)
	if n := counter.undecodable.Load(); n > 0 {
		fmt.Fprintf(progress, "sim: %s: warning: %d frames could not be decoded; payload counts may be low\n", label, n)
	}

	var grayClosed uint64
	repairs, pacing := &Repairs{}, &Pacing{}
	for _, m := range modules {
		if m != nil {
			st := m.Stats()
			grayClosed += st.Background.ScoreDisconnects
			repairs.add(st)
			pacing.add(st)
		}
	}
	if grayClosed > 0 {
		fmt.Fprintf(progress, "sim: %s: %d connections closed to graylisted peers (gossipsub scores)\n", label, grayClosed)
	}
	conns, err := sc.settleConnections(ctx, modules, started)
	if err != nil {
		return StrategyResult{}, err
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	r := sc.summarise(s, fd, origins, sent, traffic)
	r.ConnectionsPerNode = countQuantiles(conns)
	r.Repairs, r.Pacing = repairs, pacing
	if cfg.HeapProfile != "" {
		if err := writeHeapProfile(cfg.HeapProfile + "-" + s.Name() + ".pprof"); err != nil {
			return StrategyResult{}, err
		}
	}
	return r, nil
}

// settleConnections waits until every connection made while the network
// started could have been trimmed once (the connection manager's grace
// period and one check after it), then counts each running node's peers.
func (sc *scenario) settleConnections(ctx context.Context, modules []*p2p.Module, started time.Time) ([]int, error) {
	wait := sc.cfg.ConnSettle
	if wait == 0 && sc.wired && sc.cfg.Virtual == nil {
		cm := p2p.DefaultConfig().ConnManager
		wait = cm.GracePeriod + cm.SilencePeriod + time.Second
	}
	if err := sleep(ctx, time.Until(started.Add(wait))); err != nil {
		return nil, err
	}
	var conns []int
	for _, m := range modules {
		if m != nil {
			conns = append(conns, len(m.Host().Network().Peers()))
		}
	}
	return conns, nil
}

// nodeConfig is node n's configuration under strategy s, without a host:
// the shipped configuration for "default"; otherwise the strategy's
// routers, with the shipped gossip parameters next to RainTree and
// pubsub's stock ones (background.StockGossipParams) for plain gossipsub,
// so the baseline does not move when the shipped parameters do.
func (sc *scenario) nodeConfig(s Strategy, n simNode) p2p.Config {
	mc := sc.strategyConfig(s, n)
	if sc.cfg.tweak != nil {
		sc.cfg.tweak(&mc)
	}
	return mc
}

// strategyConfig is a node's configuration for strategy s.
func (sc *scenario) strategyConfig(s Strategy, n simNode) p2p.Config {
	mc := p2p.DefaultConfig()
	mc.NetworkID = simNetworkID
	mc.Key = n.key
	mc.Validators = validators.StaticProvider{Set: sc.set}
	mc.Silent = n.silent
	mc.Background.BootstrapPeers = n.bootstrap
	// The initial wiring and the nodes' bootstrap peers are the discovery.
	mc.Background.DHT = false
	if s.Default {
		return mc
	}
	switch {
	case s.RainTreeOnly():
		mc.Routers = p2p.RoutersRainTreeOnly
	case s.RainTree == "":
		mc.Routers = p2p.RoutersBackgroundOnly
	default:
		mc.Routers = p2p.RoutersBoth
	}
	if s.RainTree != "" {
		mc.RainTree.Mode = raintree.Mode(s.RainTree)
		mc.RainTree.ACK = s.ACK
		if s.Ternary {
			mc.RainTree.LevelsPerHop = 1
		}
	}
	if s.Gossip != "" {
		mc.Background.PubSub = background.PubSubKind(s.Gossip)
		mc.Background.Gossip.LazyAmongValidators = s.Lazy
	}
	if s.Repair {
		mc.Background.Gossip.RepairSlack = repairSlack
	}
	if s.RainTree == "" && s.Gossip == string(background.GossipSub) {
		mc.Background.Gossip = background.StockGossipParams()
	}
	return mc
}

// repairSlack is the slack of the strategies with "repair": a link at
// the simulator's default latency (ADR 0002, fourteenth session).
const repairSlack = 10 * time.Millisecond

// connect connects every pair of nodes that run, for runs without
// --degree wiring.
func (sc *scenario) connect(ctx context.Context, fab fabric, modules []*p2p.Module) error {
	var run [][2]int
	for a := range modules {
		for b := a + 1; b < len(modules); b++ {
			if modules[a] != nil && modules[b] != nil {
				run = append(run, [2]int{a, b})
			}
		}
	}
	return fab.connect(ctx, run)
}

// waitGossipReady waits until every running node sees min(D, its
// connected peers) topic peers (with --degree wiring: min(Dlo, its running
// bootstrap peers)), then GossipSettle so gossipsub meshes are grafted.
// After ReadyTimeout it warns on progress and returns, so a slow start-up
// shows in the delivery figures rather than aborting a long run.
func (sc *scenario) waitGossipReady(parent context.Context, modules []*p2p.Module, label string, progress io.Writer) error {
	params := background.DefaultGossipParams()
	ctx, cancel := context.WithTimeout(parent, sc.cfg.ReadyTimeout)
	defer cancel()
	short := 0
	running := map[peer.ID]bool{}
	for _, m := range modules {
		if m != nil {
			running[m.Host().ID()] = true
		}
	}
	for i, m := range modules {
		if m == nil {
			continue
		}
		// A wired node dials its own bootstrap peers: wait for enough of
		// them to fill a mesh's lower bound.
		bootWant := 0
		for _, b := range sc.nodes[i].bootstrap {
			if running[b.ID] {
				bootWant++
			}
		}
		bootWant = min(bootWant, background.StockGossipParams().Dlo)
		for {
			want := min(params.D, len(m.Host().Network().Peers()))
			if sc.wired {
				want = bootWant
			}
			have := m.Status().Peers[string(p2p.RouterBackground)]
			if have >= want && want > 0 {
				break
			}
			if ctx.Err() != nil { // out of time: note it and let delivery tell
				short++
				break
			}
			if err := sleep(ctx, 20*time.Millisecond); err != nil && parent.Err() != nil {
				return fmt.Errorf("node %d: waiting for gossip topic peers (have %d, want %d): %w", i, have, want, err)
			}
		}
	}
	if short > 0 {
		fmt.Fprintf(progress, "sim: %s: warning: %d nodes still short of gossip topic peers after %v; running anyway\n",
			label, short, sc.cfg.ReadyTimeout)
	}
	return sleep(parent, sc.cfg.GossipSettle)
}

// settleQuiet is how long nothing may move before the network counts as
// drained: a few link latencies.
func settleQuiet(cfg NetConfig) time.Duration {
	lat := cfg.Latency
	if cfg.Virtual != nil {
		lat = max(lat, cfg.Virtual.LatencyMax)
	}
	return max(4*lat, 100*time.Millisecond)
}

// Minimum quiet period after which a broadcast that has not reached every
// target is considered over.
const (
	minQuiet        = 200 * time.Millisecond
	quietLatencies  = 5
	maxQuietPolling = 50 * time.Millisecond
)

// quietPeriod is how long the network must carry no payload and deliver
// nothing before a broadcast that has not reached every target is given
// up: a few link latencies, plus the longest delay after which a strategy
// may still send a payload copy without any traffic in between: the ACK
// timeout before a RainTree re-delegation, a heartbeat before gossipsub's
// IHAVE gossip brings a missed message, and, for a full node's block under
// the shipped configuration, the wait for its parent's proof before it
// hands the block to the next parent, whose first bytes arrive a
// transfer (at most an ACK timeout) later.
func (sc *scenario) quietPeriod(s Strategy) time.Duration {
	var extra time.Duration
	ackTimeout := raintree.DefaultConfig(simNetworkID).ACKTimeout
	if s.ACK {
		extra = max(extra, ackTimeout)
	}
	if wait := background.DefaultGossipParams().ProofWait(len(sc.payload)); s.Default && wait > 0 {
		extra = max(extra, wait+ackTimeout)
	}
	if s.Gossip == string(background.GossipSub) {
		extra = max(extra, background.DefaultGossipParams().HeartbeatInterval, background.StockGossipParams().HeartbeatInterval)
	}
	lat := sc.cfg.Latency
	if sc.cfg.Virtual != nil {
		lat = max(lat, sc.cfg.Virtual.LatencyMax)
	}
	return max(quietLatencies*lat, minQuiet) + extra
}

// waitEnd says why waitQuiet returned.
type waitEnd int

const (
	endDone     waitEnd = iota // done was closed
	endQuiet                   // activity did not change for the quiet period
	endDeadline                // the deadline passed
)

// waitQuiet waits until done is closed (nil: never), until activity has
// returned the same value for quiet, or until deadline, whichever comes
// first. Only ctx ending makes it fail.
func waitQuiet(ctx context.Context, done <-chan struct{}, activity func() int64, quiet time.Duration, deadline time.Time) (waitEnd, error) {
	poll := time.NewTicker(max(min(quiet/4, maxQuietPolling), time.Millisecond))
	defer poll.Stop()
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	last, stable := activity(), time.Now()
	for {
		select {
		case <-done:
			return endDone, nil
		case <-timeout.C:
			return endDeadline, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case now := <-poll.C:
			if cur := activity(); cur != last {
				last, stable = cur, now
			} else if now.Sub(stable) >= quiet {
				return endQuiet, nil
			}
		}
	}
}

func (sc *scenario) summarise(s Strategy, fd *firstDeliveries, origins []int, sent []time.Time, traffic wireSnapshot) StrategyResult {
	var valTargets, valDelivered, fnTargets, fnDelivered, live int
	var curve, coverage, valCoverage, fnCoverage []time.Duration
	for _, t := range fd.isTarget {
		if t {
			live++
		}
	}
	perBroadcast := make([]BroadcastResult, len(origins))
	for j, o := range origins {
		b := sc.tallyBroadcast(fd, j, o, sent[j])
		perBroadcast[j] = b.BroadcastResult
		curve = append(curve, b.delays...)
		valTargets, valDelivered = valTargets+b.val.targets, valDelivered+b.val.delivered
		fnTargets, fnDelivered = fnTargets+b.fn.targets, fnDelivered+b.fn.delivered
		if d, ok := b.last(); ok {
			coverage = append(coverage, d)
		}
		if b.val.delivered > 0 {
			valCoverage = append(valCoverage, b.val.last)
		}
		if b.fn.delivered > 0 {
			fnCoverage = append(fnCoverage, b.fn.last)
		}
	}
	slices.Sort(curve)
	b := float64(len(origins))
	delivered := valDelivered + fnDelivered
	dups := max(traffic.payloadMsgs-int64(delivered), 0)
	r := StrategyResult{
		Name:                        s.Name(),
		DeliveryRatio:               ratio(valDelivered+fnDelivered, valTargets+fnTargets),
		ValidatorDeliveryRatio:      ratio(valDelivered, valTargets),
		PayloadMessagesPerBroadcast: round(float64(traffic.payloadMsgs)/b, 3),
		PayloadBytesPerBroadcast:    ptr(round(float64(traffic.payloadBytes)/b, 1)),
		WireBytesPerBroadcast:       ptr(round(float64(traffic.wireBytes)/b, 1)),
		DuplicatesPerNode:           round(float64(dups)/b/float64(max(live, 1)), 4),
		CoverageMS:                  quantilesMS(coverage),
		ValidatorCoverageMS:         quantilesMS(valCoverage),
		Curve:                       curve,
		Targets:                     valTargets + fnTargets,
		PerBroadcast:                perBroadcast,
	}
	if !s.RainTreeOnly() {
		r.FullNodeDeliveryRatio = ratio(fnDelivered, fnTargets)
		r.FullNodeCoverageMS = quantilesMS(fnCoverage)
	}
	var vals, fulls int
	for i, t := range fd.isTarget {
		switch {
		case !t:
		case sc.nodes[i].validator:
			vals++
		default:
			fulls++
		}
	}
	perNode := func(copies int64, nodes int) *float64 {
		if nodes == 0 {
			return nil
		}
		return ptr(round(float64(copies)/b/float64(nodes), 3))
	}
	r.PayloadCopiesPerNode = &RoleCopies{Validator: perNode(traffic.toValidators, vals), FullNode: perNode(traffic.toFullNodes, fulls)}
	return r
}

// roleTally counts one role's targets of a broadcast, those that
// delivered it, and the delay of the last of them.
type roleTally struct {
	targets, delivered int
	last               time.Duration
	lastVia            p2p.RouterName
	lastNode           int
}

func (t *roleTally) add(node int, at time.Time, via p2p.RouterName, sent time.Time) (time.Duration, bool) {
	t.targets++
	if at.IsZero() {
		return 0, false
	}
	d := max(at.Sub(sent), 0)
	t.delivered++
	if t.delivered == 1 || d >= t.last {
		t.last, t.lastVia, t.lastNode = d, via, node
	}
	return d, true
}

// broadcastTally is what summarise needs of one broadcast.
type broadcastTally struct {
	BroadcastResult
	val, fn roleTally
	delays  []time.Duration // of every reached target
}

// last is the delay of the broadcast's last first delivery, and whether
// anyone delivered it.
func (b broadcastTally) last() (time.Duration, bool) {
	return max(b.val.last, b.fn.last), b.Reached > 0
}

// tallyBroadcast measures broadcast j, sent by node o at sent. The caller
// holds fd.mu.
func (sc *scenario) tallyBroadcast(fd *firstDeliveries, j, o int, sent time.Time) broadcastTally {
	b := broadcastTally{BroadcastResult: BroadcastResult{Origin: o, OriginRole: roleOf(sc.nodes[o]), FirstVia: map[string]int{}}}
	for i, t := range fd.isTarget {
		if !t || i == o {
			continue
		}
		tally := &b.fn
		if sc.nodes[i].validator {
			tally = &b.val
		}
		if d, ok := tally.add(i, fd.at[i][j], fd.via[i][j], sent); ok {
			b.delays = append(b.delays, d)
			b.FirstVia[string(fd.via[i][j])]++
		}
	}
	b.Targets, b.Reached = b.val.targets+b.fn.targets, b.val.delivered+b.fn.delivered
	if b.val.delivered > 0 {
		b.ValidatorCoverageMS, b.LastValidatorVia, b.LastValidator = ptr(ms(b.val.last)), ptr(string(b.val.lastVia)), ptr(b.val.lastNode)
	}
	if b.fn.delivered > 0 {
		b.FullNodeCoverageMS, b.LastFullNode = ptr(ms(b.fn.last)), ptr(b.fn.lastNode)
	}
	return b
}

func roleOf(n simNode) string {
	if n.validator {
		return RoleValidator
	}
	return RoleFullNode
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
