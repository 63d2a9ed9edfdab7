package background

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

func TestEffectiveGossipOfLazyValidators(t *testing.T) {
	tests := []struct {
		name      string
		validator bool
		lazy      bool
		kind      PubSubKind
		wantD     int
		wantDhi   int
		wantFlood bool
		wantDlazy int // exact under lazy gossip; otherwise at least, as pubsub's GossipFactor may raise it
	}{
		{"a full node of a lazy network runs the configured mesh and flood publishing, and advertises to LazyDlazy peers", false, true, GossipSub, 7, 12, true, DefaultLazyDlazy},
		{"a full node of an eager network runs the configured mesh", false, false, GossipSub, 7, 12, true, 5},
		{"a lazy validator runs a small, capped mesh without flood publishing, and advertises to LazyDlazy peers", true, true, GossipSub, DefaultValidatorD, 3, false, DefaultLazyDlazy},
		{"an eager validator runs the configured mesh", true, false, GossipSub, 7, 12, true, 5},
		{"lazy gossip needs gossipsub", true, true, FloodSub, 7, 12, true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig("lazy")
			c.PubSub, c.RainTreeValidator, c.Gossip.LazyAmongValidators = tt.kind, tt.validator, tt.lazy
			c.Gossip.D, c.Gossip.Dhi, c.Gossip.Dlazy, c.Gossip.FloodPublish = 7, 12, 5, true
			c.Gossip.ValidatorDhi = 3
			g := c.effectiveGossip()
			if g.D != tt.wantD || g.Dhi != tt.wantDhi || g.FloodPublish != tt.wantFlood {
				t.Fatalf("D=%d Dhi=%d flood=%v, want D=%d Dhi=%d flood=%v", g.D, g.Dhi, g.FloodPublish, tt.wantD, tt.wantDhi, tt.wantFlood)
			}
			exact := tt.wantDlazy == DefaultLazyDlazy
			p := gossipSubParams(g)
			if p.Dlazy != tt.wantDlazy || (p.GossipFactor == 0) != exact {
				t.Fatalf("Dlazy=%d GossipFactor=%v, want Dlazy=%d exact=%v", p.Dlazy, p.GossipFactor, tt.wantDlazy, exact)
			}
			// A lazy network prunes by score alone, so full nodes keep
			// their validators; elsewhere pubsub's default.
			if wantDscore := map[bool]int{true: g.D, false: min(pubsub.DefaultGossipSubParams().Dscore, g.D)}[exact]; p.Dscore != wantDscore {
				t.Fatalf("Dscore=%d, want %d", p.Dscore, wantDscore)
			}
			if tt.kind == GossipSub {
				// pubsub checks the derived mesh parameters when it starts
				n := startNode(t, c)
				if err := n.r.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestLazyGossipConfigIsValidated(t *testing.T) {
	tests := []struct {
		name string
		edit func(*GossipParams)
	}{
		{"a validator mesh of one", func(g *GossipParams) { g.ValidatorD = 1 }},
		{"a validator mesh capped below its degree", func(g *GossipParams) { g.ValidatorDhi = g.ValidatorD - 1 }},
		{"a negative forward delay", func(g *GossipParams) { g.ForwardDelay = -time.Millisecond }},
		{"a forward delay beyond IDONTWANT's lifetime", func(g *GossipParams) { g.ForwardDelay = 3 * g.HeartbeatInterval }},
		{"a maximum forward delay below the forward delay", func(g *GossipParams) { g.MaxForwardDelay = g.ForwardDelay - 1 }},
		{"a maximum forward delay beyond IDONTWANT's lifetime", func(g *GossipParams) { g.MaxForwardDelay = 3 * g.HeartbeatInterval }},
		{"no room for the IDs validators said they have", func(g *GossipParams) { g.MaxHaveSignals = 0 }},
		{"a large-message delay below the forward delay", func(g *GossipParams) { g.LargeForwardDelay = g.ForwardDelay - 1 }},
		{"a large-message delay beyond IDONTWANT's lifetime", func(g *GossipParams) { g.LargeForwardDelay = 3 * g.HeartbeatInterval }},
		{"no large-message threshold", func(g *GossipParams) { g.LargeBytes = 0 }},
		{"a negative LazyDlazy", func(g *GossipParams) { g.LazyDlazy = -1 }},
		{"no room to hold messages", func(g *GossipParams) { g.MaxHeldBytes = 0 }},
		{"no submit fallback", func(g *GossipParams) { g.SubmitFallback = 0 }},
		{"a large-message fallback below the fallback", func(g *GossipParams) { g.LargeSubmitFallback = g.SubmitFallback - 1 }},
		{"no room for pending publications", func(g *GossipParams) { g.MaxPending = 0 }},
		{"a negative repair slack", func(g *GossipParams) { g.RepairSlack = -time.Millisecond }},
		{"repairs without the uplink that leaves pubsub's copy out", func(g *GossipParams) { g.RepairSlack, g.LargeWriteHold = time.Millisecond, 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			c := DefaultConfig("lazy")
			c.Gossip.LazyAmongValidators = true
			tt.edit(&c.Gossip)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
			c.Gossip.LazyAmongValidators = false
			if err := c.Validate(); err != nil {
				t.Fatalf("ignored without lazy gossip, got %v", err)
			}
		})
	}
}

// meshTag is how pubsub's tag tracer protects mesh peers in the connection
// manager.
func meshTag(network string) string { return "pubsub:" + TopicName(network) }

func newHostWithConnManager(t *testing.T) host.Host {
	t.Helper()
	cm, err := connmgr.NewConnManager(50, 100)
	if err != nil {
		t.Fatal(err)
	}
	return newHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ConnectionManager(cm))
}

// Two validators and a full node, all connected. Eager validators mesh with
// each other; lazy ones mesh only with the full node, while still
// exchanging gossip, and a broadcast still reaches everyone.
func TestLazyValidatorsMeshOnlyWithFullNodes(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(map[bool]string{false: "eager", true: "lazy"}[lazy], func(t *testing.T) {
			const network = "lazymesh"
			cfg := testConfig(network)
			cfg.Gossip.LazyAmongValidators = lazy
			cfg.Gossip.ValidatorD = 3 // Dlo 2: with one mesh peer, a validator looks for another
			vcfg := cfg
			vcfg.RainTreeValidator = true
			a := startNodeOn(t, newHostWithConnManager(t), vcfg)
			b := startNodeOn(t, newHostWithConnManager(t), vcfg)
			c := startNodeOn(t, newHostWithConnManager(t), cfg)
			a.r.SetValidatorIDs(nil, []peer.ID{b.h.ID()})
			b.r.SetValidatorIDs(nil, []peer.ID{a.h.ID()})
			connect(t, a.h, b.h)
			connect(t, a.h, c.h)
			connect(t, b.h, c.h)

			inMesh := func(of, p *node) bool { return of.h.ConnManager().IsProtected(p.h.ID(), meshTag(network)) }
			c.r.SetValidatorIDs(nil, []peer.ID{a.h.ID(), b.h.ID()})
			eventually(t, 10*time.Second, "validators meshing with the full node", func() bool {
				return inMesh(a, c) && inMesh(b, c) && inMesh(c, a) && inMesh(c, b)
			})
			if !lazy {
				eventually(t, 10*time.Second, "eager validators meshing with each other", func() bool {
					return inMesh(a, b) && inMesh(b, a)
				})
				return
			}
			// Absence cannot be awaited: watch for several heartbeats, in
			// each of which a validator below Dlo grafts every eligible peer.
			deadline := time.Now().Add(10 * cfg.Gossip.HeartbeatInterval)
			for time.Now().Before(deadline) {
				if inMesh(a, b) || inMesh(b, a) {
					t.Fatal("lazy validators meshed with each other")
				}
				time.Sleep(cfg.Gossip.HeartbeatInterval / 4)
			}
			env := envelope(t, a, "lazy")
			if err := a.r.Broadcast(context.Background(), env); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the broadcast reaching both peers", func() bool {
				return len(b.in.deliveries(env)) == 1 && len(c.in.deliveries(env)) == 1
			})
		})
	}
}

// A lazy validator keeps at most ValidatorDhi full nodes in its mesh,
// however many graft it: each may push it a block RainTree is bringing.
// An eager validator keeps up to Dhi, so six full nodes all stay.
func TestALazyValidatorKeepsAtMostValidatorDhiFullNodesInItsMesh(t *testing.T) {
	tests := []struct {
		name     string
		lazy     bool
		min, max int
	}{
		{"lazy: between ValidatorD and ValidatorDhi", true, 2, 3},
		{"eager: every full node that grafted", false, 6, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const network = "meshcap"
			cfg := testConfig(network)
			cfg.Gossip.LazyAmongValidators = tt.lazy
			cfg.Gossip.ValidatorD, cfg.Gossip.ValidatorDhi = 2, 3
			vcfg := cfg
			vcfg.RainTreeValidator = true
			v := startNodeOn(t, newHostWithConnManager(t), vcfg)
			v.r.SetValidatorIDs(nil, nil)
			var fulls []*node
			for range 6 {
				f := startNodeOn(t, newHostWithConnManager(t), cfg)
				f.r.SetValidatorIDs(nil, []peer.ID{v.h.ID()})
				connect(t, f.h, v.h)
				fulls = append(fulls, f)
			}
			meshed := func() int {
				n := 0
				for _, f := range fulls {
					if v.h.ConnManager().IsProtected(f.h.ID(), meshTag(network)) {
						n++
					}
				}
				return n
			}
			eventually(t, 10*time.Second, "the validator's mesh filling", func() bool { return meshed() >= tt.min })
			// The full nodes, alone with the validator, graft it at every
			// heartbeat: watch several for a mesh beyond the cap.
			deadline := time.Now().Add(10 * cfg.Gossip.HeartbeatInterval)
			for time.Now().Before(deadline) {
				if n := meshed(); n > tt.max {
					t.Fatalf("the validator keeps %d full nodes in its mesh, want at most %d", n, tt.max)
				}
				time.Sleep(cfg.Gossip.HeartbeatInterval / 4)
			}
		})
	}
}

// A full node of a lazy network scores the validators keptScore, and
// pruning its oversubscribed mesh keeps the best-scoring peers only, so
// it keeps every validator that grafted it, up to D (less the Dout slots
// pubsub fills with peers it dialled, when too few of those kept are):
// also more of them than pubsub's default Dscore (4), which would keep
// 4 by score and the rest of D at random.
func TestAFullNodePruningItsMeshKeepsItsValidators(t *testing.T) {
	for _, tc := range []struct {
		name               string
		d, dlo, dhi        int
		validators, others int
	}{
		// Pruned to D = 2 of 12: by chance, the validator would stay 1
		// time in 6.
		{name: "one validator, a mesh of two", d: 2, dlo: 1, dhi: 3, validators: 1, others: 11},
		// Pruned to D = 5 of 13: keeping 4 by score and one at random
		// would keep the fifth validator 1 time in 9.
		{name: "five validators, more than pubsub's Dscore", d: 5, dlo: 4, dhi: 6, validators: 5, others: 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const network = "keepvalidators"
			cfg := testConfig(network)
			cfg.Gossip.LazyAmongValidators = true
			cfg.Gossip.D, cfg.Gossip.Dlo, cfg.Gossip.Dhi = tc.d, tc.dlo, tc.dhi
			vcfg := cfg
			vcfg.RainTreeValidator = true
			f := startNodeOn(t, newHostWatchingMesh(t, network), cfg)
			var vals []*node
			var ids []peer.ID
			for range tc.validators {
				v := startNodeOn(t, newHostWithConnManager(t), vcfg)
				v.r.SetValidatorIDs(nil, nil)
				vals, ids = append(vals, v), append(ids, v.h.ID())
			}
			f.r.SetValidatorIDs(nil, ids)
			// f dials the first, as a full node dials its heads: pubsub
			// keeps Dout outbound peers in a mesh before any by score.
			connect(t, f.h, vals[0].h)
			for _, v := range vals[1:] {
				connect(t, v.h, f.h)
			}
			awaitMutualMesh(t, network, f, vals...)
			awaitPruningKeeps(t, network, cfg, f, vals, ids, tc.others)
		})
	}
}

// awaitPruningKeeps connects others full nodes to f, which graft it
// beyond Dhi, and fails if f prunes one of vals from its mesh while they
// connect and for at least 20 heartbeats after; it also fails if f never
// pruned anyone, which would prove nothing. f's host is from
// newHostWatchingMesh: each full node grafts f once, at its first
// heartbeat, and f may prune it at its next, before a poll of its mesh
// sees it, and while the others still connect; pruned, it backs off for a
// minute, f being its only peer.
func awaitPruningKeeps(t *testing.T, network string, cfg Config, f *node, vals []*node, ids []peer.ID, others int) {
	t.Helper()
	w := f.h.ConnManager().(*meshWatch)
	w.reset()
	var fulls []*node
	for range others {
		g := startNodeOn(t, newHostWithConnManager(t), cfg)
		g.r.SetValidatorIDs(nil, ids)
		connect(t, f.h, g.h) // f dials: it accepts their grafts beyond Dhi, and prunes at its heartbeat
		fulls = append(fulls, g)
	}
	// grafted counts the full nodes that were in f's mesh; out, those f
	// pruned.
	counts := func() (grafted, out int) {
		for _, g := range fulls {
			if in, pruned := w.seen(g.h.ID()); in {
				grafted++
				if pruned {
					out++
				}
			}
		}
		return grafted, out
	}
	// At least 20 heartbeats, and on a loaded machine longer, up to 60,
	// until enough full nodes have grafted f and some were pruned.
	start, hb := time.Now(), cfg.Gossip.HeartbeatInterval
	for since := time.Duration(0); ; since = time.Since(start) {
		grafted, out := counts()
		for i, v := range vals {
			if _, pruned := w.seen(v.h.ID()); pruned || !w.IsProtected(v.h.ID(), w.tag) {
				t.Fatalf("f pruned validator %d of %d from its mesh (%d of %d full nodes that grafted it are out)", i, len(vals), out, grafted)
			}
		}
		if since >= 20*hb && (grafted >= 3 && out > 0 || since >= 60*hb) {
			break
		}
		time.Sleep(cfg.Gossip.HeartbeatInterval / 10)
	}
	if grafted, out := counts(); grafted < 3 || out == 0 {
		t.Fatalf("%d full nodes grafted f and %d were pruned: its mesh (Dhi %d, with the validators) was never pruned, so keeping the validators proves nothing",
			grafted, out, cfg.Gossip.Dhi)
	}
}

// meshWatch is a connection manager that remembers each peer pubsub's tag
// tracer protected with tag, as it grafts a peer into its mesh, and each
// it then unprotected, as it prunes it (or it left): polling IsProtected
// misses a peer grafted and pruned between two polls.
type meshWatch struct {
	*connmgr.BasicConnMgr
	tag string

	mu              sync.Mutex
	grafted, pruned map[peer.ID]bool
}

// newHostWatchingMesh is newHostWithConnManager whose connection manager
// is a meshWatch of network's mesh.
func newHostWatchingMesh(t *testing.T, network string) host.Host {
	t.Helper()
	cm, err := connmgr.NewConnManager(50, 100)
	if err != nil {
		t.Fatal(err)
	}
	w := &meshWatch{BasicConnMgr: cm, tag: meshTag(network)}
	w.reset()
	return newHost(t, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ConnectionManager(w))
}

// reset forgets the grafts and prunes seen so far.
func (w *meshWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.grafted, w.pruned = map[peer.ID]bool{}, map[peer.ID]bool{}
}

// seen reports whether p was grafted, and whether it was pruned, since
// the last reset.
func (w *meshWatch) seen(p peer.ID) (grafted, pruned bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.grafted[p], w.pruned[p]
}

func (w *meshWatch) Protect(p peer.ID, tag string) {
	if tag == w.tag {
		w.mu.Lock()
		w.grafted[p] = true
		w.mu.Unlock()
	}
	w.BasicConnMgr.Protect(p, tag)
}

func (w *meshWatch) Unprotect(p peer.ID, tag string) bool {
	if tag == w.tag {
		w.mu.Lock()
		w.pruned[p] = true
		w.mu.Unlock()
	}
	return w.BasicConnMgr.Unprotect(p, tag)
}

func TestLazyScoreSitsBetweenTheMeshAndTheGossipThreshold(t *testing.T) {
	maxFirstDeliveries := firstDeliveriesWeight * firstDeliveriesCap
	if lazyScore+maxFirstDeliveries >= 0 {
		t.Errorf("a lazy peer with every first-delivery reward scores %v: it could join the mesh", lazyScore+maxFirstDeliveries)
	}
	if d := DefaultScoreParams(); lazyScore <= d.GossipThreshold {
		t.Errorf("lazy score %v is at or below the gossip threshold %v: no IHAVE/IWANT repair", float64(lazyScore), d.GossipThreshold)
	}
}

func TestAFullNodeRanksValidatorsAboveAnyFullNode(t *testing.T) {
	if maxFirstDeliveries := firstDeliveriesWeight * firstDeliveriesCap; keptScore <= maxFirstDeliveries {
		t.Errorf("kept score %v is at or below a full node's best first-delivery reward %v: pruning may drop a validator first", float64(keptScore), maxFirstDeliveries)
	}
	r := &Router{cfg: testConfig("rank")}
	r.cfg.Gossip.LazyAmongValidators = true
	v, f := peer.ID("validator"), peer.ID("full node")
	r.lazy.replace("", nil, []peer.ID{v})
	if got := r.appScore(v); got != keptScore {
		t.Errorf("a full node scores a validator %v, want %v", got, float64(keptScore))
	}
	if got := r.appScore(f); got != 0 {
		t.Errorf("a full node scores another full node %v, want 0", got)
	}
	r.cfg.RainTreeValidator = true
	if got := r.appScore(v); got != lazyScore {
		t.Errorf("a lazy validator scores another validator %v, want %v", got, float64(lazyScore))
	}
}

func TestAFullNodesParentIsAConnectedValidatorAndStaysWhileConnected(t *testing.T) {
	cfg := testConfig("parent")
	cfg.Gossip.LazyAmongValidators = true
	vcfg := cfg
	vcfg.RainTreeValidator = true
	a, b := startNode(t, vcfg), startNode(t, vcfg)
	f := startNode(t, cfg)
	f.r.SetValidatorIDs(nil, []peer.ID{a.h.ID(), b.h.ID()})
	if p := f.r.Parent(); p != "" {
		t.Fatalf("parent %s without any connection", p)
	}
	connect(t, f.h, b.h)
	eventually(t, 5*time.Second, "the only connected validator becoming the parent", func() bool { return f.r.Parent() == b.h.ID() })
	connect(t, f.h, a.h)
	for range 20 {
		if p := f.r.Parent(); p != b.h.ID() {
			t.Fatalf("parent moved to %s while the first stayed connected", p)
		}
	}
	if a.r.Parent() != "" {
		t.Fatal("a validator has a parent")
	}
	if err := f.h.Network().ClosePeer(b.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the parent moving to the validator still connected", func() bool { return f.r.Parent() == a.h.ID() })
}
