package raintree

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testNetwork = "test"

// node is one validator of a test cluster, at its sorted index.
type node struct {
	key    crypto.PrivKey
	addr   identity.Address
	host   host.Host
	router *Router

	mu        sync.Mutex
	broadcast map[wire.MessageID]int // copies delivered
	unicast   map[wire.MessageID]int
	origins   map[wire.MessageID]identity.Address
	leaf      map[wire.MessageID]bool // a broadcast reported as a leaf of its tree
}

func (n *node) handle(_ peer.ID, msg *wire.Message, broadcast, leaf bool) {
	if _, err := wire.Open(testNetwork, msg.Raw, 0); err != nil {
		panic(fmt.Sprintf("router delivered a bad envelope: %v", err))
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.origins[msg.ID] = msg.Origin
	if leaf {
		if n.leaf == nil {
			n.leaf = map[wire.MessageID]bool{}
		}
		n.leaf[msg.ID] = true
	}
	if broadcast {
		n.broadcast[msg.ID]++
	} else {
		n.unicast[msg.ID]++
	}
}

func (n *node) got(nonce wire.MessageID, broadcast bool) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if broadcast {
		return n.broadcast[nonce]
	}
	return n.unicast[nonce]
}

type cluster struct {
	t     *testing.T
	nodes []*node // by sorted index
	set   *validators.Set
	mn    mocknet.Mocknet // nil for real hosts
}

// newKeys returns n ed25519 keys sorted the way a validator set sorts them.
func newKeys(t *testing.T, n int) []crypto.PrivKey {
	t.Helper()
	keys := make([]crypto.PrivKey, n)
	for i := range keys {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	slices.SortFunc(keys, func(a, b crypto.PrivKey) int {
		x, y := mustAddr(t, a), mustAddr(t, b)
		return slices.Compare(x[:], y[:])
	})
	return keys
}

func mustAddr(t *testing.T, k crypto.PrivKey) identity.Address {
	t.Helper()
	a, err := identity.AddressFromPublicKey(k.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newSet(t *testing.T, height uint64, keys []crypto.PrivKey) *validators.Set {
	t.Helper()
	vs := make([]validators.Validator, len(keys))
	for i, k := range keys {
		vs[i] = validators.Validator{PublicKey: k.GetPublic()}
	}
	s, err := validators.NewSet(height, vs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testConfig(mutate func(*Config)) Config {
	cfg := DefaultConfig(testNetwork)
	cfg.SendTimeout = 5 * time.Second
	if mutate != nil {
		mutate(&cfg)
	}
	return cfg
}

// newMockCluster starts n validators on a fully connected mocknet.
func newMockCluster(t *testing.T, n int, mutate func(*Config)) *cluster {
	t.Helper()
	return newMockClusterEach(t, n, func(int) func(*Config) { return mutate })
}

// newMockClusterEach is newMockCluster with a configuration per validator.
func newMockClusterEach(t *testing.T, n int, mutate func(i int) func(*Config)) *cluster {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { _ = mn.Close() })
	keys := newKeys(t, n)
	c := &cluster{t: t, mn: mn, set: newSet(t, 1, keys)}
	for i, k := range keys {
		h, err := mn.AddPeer(k, ma.StringCast(fmt.Sprintf("/ip4/10.0.%d.%d/tcp/4242", i/250, i%250+1)))
		if err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, &node{key: k, addr: mustAddr(t, k), host: h})
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	for i, nd := range c.nodes {
		c.startNode(nd, c.set, testConfig(mutate(i)))
	}
	return c
}

// newTCPCluster starts n validators as real libp2p hosts on loopback TCP.
func newTCPCluster(t *testing.T, n int, mutate func(*Config)) *cluster {
	t.Helper()
	return newTCPClusterEach(t, n, func(int) func(*Config) { return mutate })
}

// newTCPClusterEach is newTCPCluster with a configuration per validator.
func newTCPClusterEach(t *testing.T, n int, mutate func(i int) func(*Config)) *cluster {
	t.Helper()
	keys := newKeys(t, n)
	c := &cluster{t: t, set: newSet(t, 1, keys)}
	for _, k := range keys {
		h, err := libp2p.New(
			libp2p.Identity(k),
			libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
			libp2p.DisableRelay(),
		)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		c.nodes = append(c.nodes, &node{key: k, addr: mustAddr(t, k), host: h})
	}
	for _, a := range c.nodes {
		for _, b := range c.nodes {
			if a != b {
				a.host.Peerstore().AddAddrs(b.host.ID(), b.host.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	for i, nd := range c.nodes {
		c.startNode(nd, c.set, testConfig(mutate(i)))
	}
	return c
}

func (c *cluster) start(mutate func(*Config)) {
	for _, nd := range c.nodes {
		c.startNode(nd, c.set, testConfig(mutate))
	}
}

func (c *cluster) startNode(nd *node, set *validators.Set, cfg Config) {
	c.t.Helper()
	nd.broadcast, nd.unicast, nd.origins = map[wire.MessageID]int{}, map[wire.MessageID]int{}, map[wire.MessageID]identity.Address{}
	r, err := NewRouter(nd.host, nd.addr, set, cfg, nd.handle)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.router = r
	c.t.Cleanup(func() { _ = r.Close() })
}

// newEnvelope is a message signed by key on the test network.
func newEnvelope(t *testing.T, key crypto.PrivKey, text string) (*wire.Message, wire.MessageID) {
	t.Helper()
	return newEnvelopeAt(t, key, text, time.Now())
}

func newEnvelopeAt(t *testing.T, key crypto.PrivKey, text string, created time.Time) (*wire.Message, wire.MessageID) {
	t.Helper()
	return newUnicastAt(t, key, identity.Address{}, text, created)
}

// newUnicastAt is a message signed by key for the validator to.
func newUnicastAt(t *testing.T, key crypto.PrivKey, to identity.Address, text string, created time.Time) (*wire.Message, wire.MessageID) {
	t.Helper()
	env, err := wire.NewEnvelope(wrapperspb.String(text))
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Seal(testNetwork, env, key, to, created, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, m.ID
}

func (c *cluster) broadcast(origin int) wire.MessageID {
	c.t.Helper()
	env, nonce := newEnvelope(c.t, c.nodes[origin].key, fmt.Sprintf("from %d", origin))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[origin].router.Broadcast(ctx, env); err != nil {
		c.t.Fatalf("Broadcast from %d: %v", origin, err)
	}
	return nonce
}

// missing lists the nodes among want that have not delivered nonce.
func (c *cluster) missing(nonce wire.MessageID, want []int) []int {
	var out []int
	for _, i := range want {
		if c.nodes[i].got(nonce, true) == 0 {
			out = append(out, i)
		}
	}
	return out
}

func (c *cluster) sum(f func(Stats) uint64) uint64 {
	var s uint64
	for _, nd := range c.nodes {
		if nd.router != nil {
			s += f(nd.router.Stats())
		}
	}
	return s
}

// sumStats adds up the counters that explain a missing ACK.
func (c *cluster) sumStats() map[string]uint64 {
	return map[string]uint64{
		"tree_sent":       c.sum(func(s Stats) uint64 { return s.TreeSent }),
		"acks_sent":       c.sum(func(s Stats) uint64 { return s.AcksSent }),
		"acks_received":   c.sum(func(s Stats) uint64 { return s.AcksReceived }),
		"acks_unexpected": c.sum(func(s Stats) uint64 { return s.AcksUnexpected }),
		"ack_timeouts":    c.sum(func(s Stats) uint64 { return s.AckTimeouts }),
		"send_errors":     c.sum(func(s Stats) uint64 { return s.SendErrors }),
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: "+format, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func others(n, self int) []int {
	var out []int
	for i := range n {
		if i != self {
			out = append(out, i)
		}
	}
	return out
}

func TestBroadcastReachesEveryValidator(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 9, 13, 27} {
		t.Run(fmt.Sprintf("cover/N=%d", n), func(t *testing.T) {
			c := newMockCluster(t, n, nil)
			origin := n / 2
			nonce := c.broadcast(origin)
			eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, others(n, origin))) == 0 },
				"validators %v never delivered", c.missing(nonce, others(n, origin)))
			if got := c.nodes[origin].got(nonce, true); got != 0 {
				t.Errorf("originator delivered its own broadcast %d times", got)
			}
		})
	}
}

// The router reports a broadcast as a leaf exactly where the plan has the
// node send nothing (lazy gossip lets leaves feed full nodes).
func TestLeavesAreTheNodesThePlanHasSendNothing(t *testing.T) {
	for _, n := range []int{4, 9, 13, 27} {
		t.Run(fmt.Sprintf("cover/N=%d", n), func(t *testing.T) {
			c := newMockCluster(t, n, nil)
			origin := n / 3
			nonce := c.broadcast(origin)
			eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, others(n, origin))) == 0 },
				"validators %v never delivered", c.missing(nonce, others(n, origin)))
			plan := Broadcast(n, origin, ModeCover, Options{LevelsPerHop: DefaultLevelsPerHop})
			for i, nd := range c.nodes {
				nd.mu.Lock()
				leaf := nd.leaf[nonce]
				nd.mu.Unlock()
				if want := i != origin && plan.Writes[i] == 0; leaf != want {
					t.Errorf("node %d reported leaf=%v, the plan has it write %d messages", i, leaf, plan.Writes[i])
				}
			}
		})
	}
}

func TestBroadcastOverTCP(t *testing.T) {
	c := newTCPCluster(t, 5, nil)
	for origin := range 5 {
		nonce := c.broadcast(origin)
		eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, others(5, origin))) == 0 },
			"origin %d: validators %v never delivered", origin, c.missing(nonce, others(5, origin)))
	}
	eventually(t, 5*time.Second, func() bool {
		return c.sum(func(s Stats) uint64 { return s.AcksReceived }) == c.sum(func(s Stats) uint64 { return s.TreeSent })
	}, "not every tree frame was acknowledged: %+v", c.sumStats())
	if got := c.sum(func(s Stats) uint64 { return s.TreeSent }); got != 5*4 {
		t.Errorf("cover sent %d tree frames for 5 broadcasts over 5 validators, want 20", got)
	}
}

// TestNetworkLoadMatchesPlan checks that what routers actually send and
// receive is what raintree.Broadcast predicts, node by node.
func TestNetworkLoadMatchesPlan(t *testing.T) {
	tests := []struct {
		mode      Mode
		n, origin int
		ack       bool
	}{
		{ModeReference, 9, 0, false},
		{ModeReference, 9, 4, false},
		{ModeReference, 8, 0, false},
		{ModeCover, 13, 5, true},
		{ModeCover, 27, 0, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/N=%d/origin=%d", tt.mode, tt.n, tt.origin), func(t *testing.T) {
			plan := Broadcast(tt.n, tt.origin, tt.mode, Options{LevelsPerHop: DefaultLevelsPerHop})
			c := newMockCluster(t, tt.n, func(cfg *Config) { cfg.Mode, cfg.ACK = tt.mode, tt.ack })
			nonce := c.broadcast(tt.origin)
			received := func() uint64 { return c.sum(func(s Stats) uint64 { return s.TreeReceived }) }
			eventually(t, 10*time.Second, func() bool { return received() >= uint64(plan.Messages) },
				"%d tree frames received, plan has %d", received(), plan.Messages)
			if tt.ack {
				eventually(t, 5*time.Second, func() bool {
					return c.sum(func(s Stats) uint64 { return s.AcksReceived }) == uint64(plan.Messages)
				}, "not every tree frame was acknowledged: %+v", c.sumStats())
			}
			time.Sleep(100 * time.Millisecond) // let any frame the plan does not predict arrive
			for i, nd := range c.nodes {
				s := nd.router.Stats()
				if s.TreeSent != uint64(plan.Writes[i]) || s.TreeReceived != uint64(plan.Reads[i]) {
					t.Errorf("node %d: wrote %d, read %d; plan says %d, %d", i, s.TreeSent, s.TreeReceived, plan.Writes[i], plan.Reads[i])
				}
				if s.Retries != 0 || s.AckTimeouts != 0 || s.SendErrors != 0 {
					t.Errorf("node %d: fault-free run had %+v", i, s)
				}
			}
			covered := slices.DeleteFunc(others(tt.n, tt.origin), func(i int) bool { return slices.Contains(plan.Uncovered, i) })
			eventually(t, 5*time.Second, func() bool { return len(c.missing(nonce, covered)) == 0 },
				"validators %v never delivered", c.missing(nonce, covered))
			uncovered := c.missing(nonce, others(tt.n, tt.origin))
			if uncovered == nil {
				uncovered = []int{}
			}
			if !slices.Equal(uncovered, plan.Uncovered) {
				t.Errorf("validators that never delivered: %v, plan says %v", uncovered, plan.Uncovered)
			}
			if tt.mode == ModeReference && tt.n == 8 && len(uncovered) != 2 {
				t.Errorf("reference at N=8 should miss 2 validators, missed %v", uncovered)
			}
		})
	}
}

// crash takes validator i down: closed makes it refuse the protocol, while
// a black hole accepts frames and never answers, so only a timeout
// reveals it.
func (c *cluster) crash(i int, blackHole bool) {
	nd := c.nodes[i]
	_ = nd.router.Close()
	nd.router = nil
	if blackHole {
		nd.host.SetStreamHandler(ProtocolID(testNetwork), func(s network.Stream) {
			_, _ = io.Copy(io.Discard, s)
			_ = s.Reset()
		})
	}
}

func TestCrashedValidators(t *testing.T) {
	const n, origin = 15, 0
	closed, blackHoles := []int{2, 5}, []int{6, 10}
	down := make([]bool, n)
	for _, i := range slices.Concat(closed, blackHoles) {
		down[i] = true
	}
	var live []int
	for i := range n {
		if !down[i] && i != origin {
			live = append(live, i)
		}
	}
	for _, ack := range []bool{true, false} {
		t.Run(fmt.Sprintf("ACK=%v", ack), func(t *testing.T) {
			plan := Broadcast(n, origin, ModeCover, Options{Down: down, ACK: ack, MaxRetries: DefaultMaxRetries, LevelsPerHop: DefaultLevelsPerHop})
			if ack != (len(plan.Uncovered) == 0) {
				t.Fatalf("plan with ACK=%v leaves %v uncovered; the test needs ACK to matter", ack, plan.Uncovered)
			}
			c := newMockCluster(t, n, func(cfg *Config) { cfg.ACK, cfg.ACKTimeout = ack, 300*time.Millisecond })
			for _, i := range closed {
				c.crash(i, false)
			}
			for _, i := range blackHoles {
				c.crash(i, true)
			}
			env, nonce := newEnvelope(t, c.nodes[origin].key, "crash")
			err := c.nodes[origin].router.Broadcast(context.Background(), env)
			if ack && err != nil {
				t.Fatalf("Broadcast with ACK on: %v", err)
			}
			covered := slices.DeleteFunc(slices.Clone(live), func(i int) bool { return slices.Contains(plan.Uncovered, i) })
			eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, covered)) == 0 },
				"live validators %v never delivered", c.missing(nonce, covered))
			if !ack {
				// Absence cannot be awaited: give the holes time to fill, were they not holes.
				time.Sleep(500 * time.Millisecond)
				if got := c.missing(nonce, live); !slices.Equal(got, plan.Uncovered) {
					t.Errorf("without ACK, %v missed the broadcast; plan says %v", got, plan.Uncovered)
				}
				return
			}
			// The live validators can all have it before the last
			// re-delegation's counter moves (a span reached another way
			// first), so the counts are awaited, not read once.
			retries := func() uint64 { return c.sum(func(s Stats) uint64 { return s.Retries }) }
			eventually(t, 5*time.Second, func() bool { return retries() >= max(uint64(len(plan.Redelegations)), 1) },
				"fewer re-delegations around %d down validators than the plan's %d", len(closed)+len(blackHoles), len(plan.Redelegations))
			// Only a timeout reveals a black hole.
			timeouts := func() uint64 { return c.sum(func(s Stats) uint64 { return s.AckTimeouts }) }
			eventually(t, 5*time.Second, func() bool { return timeouts() >= uint64(len(blackHoles)) },
				"fewer ACK timeouts than %d black holes", len(blackHoles))
		})
	}
}

func TestUnicast(t *testing.T) {
	c := newMockCluster(t, 3, nil)
	outsider, err := c.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("a validator receives it as a unicast", func(t *testing.T) {
		env, nonce := newUnicastAt(t, c.nodes[0].key, c.nodes[2].addr, "direct", time.Now())
		if err := c.nodes[0].router.Send(ctx, c.nodes[2].host.ID(), env); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() bool { return c.nodes[2].got(nonce, false) == 1 }, "unicast not delivered")
		if c.nodes[2].got(nonce, true) != 0 || c.nodes[1].got(nonce, false) != 0 {
			t.Error("unicast was delivered as a broadcast or to the wrong validator")
		}
	})
	t.Run("sending to a non-validator fails", func(t *testing.T) {
		env, _ := newEnvelope(t, c.nodes[0].key, "nope")
		if err := c.nodes[0].router.Send(ctx, outsider.ID(), env); !errors.Is(err, ErrNotValidator) {
			t.Fatalf("Send to a non-validator = %v, want ErrNotValidator", err)
		}
	})
	t.Run("frames from a non-validator are dropped and counted", func(t *testing.T) {
		u, err := unicast.New(outsider, unicast.DefaultConfig(ProtocolID(testNetwork)), func(peer.ID, []byte) {})
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		env, nonce := newEnvelope(t, newKeys(t, 1)[0], "intruder")
		frames := []*wire.RainTreeMessage{
			{Kind: wire.RainTreeKind_RAIN_TREE_KIND_UNICAST, Data: env.Raw},
			{Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Data: env.Raw, Level: 1, MessageId: nonce[:], Mode: string(ModeCover),
				SetHash: c.set.Hash(), SpanStart: 1, SpanLen: 1},
			{Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Data: env.Raw, Level: 1, MessageId: nonce[:], Mode: string(ModeCover),
				SetHash: []byte("some other set"), SpanStart: 1, SpanLen: 1},
		}
		for _, f := range frames {
			b, err := proto.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Send(ctx, c.nodes[1].host.ID(), b); err != nil {
				t.Fatal(err)
			}
		}
		if err := u.Send(ctx, c.nodes[1].host.ID(), []byte("not a frame")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() bool {
			d := c.nodes[1].router.Stats().Dropped
			return d.UnknownSender == 3 && d.Malformed == 1 && d.BadSignature == 0
		}, "drops: %+v unicast %+v sender %+v", c.nodes[1].router.Stats().Dropped, c.nodes[1].router.UnicastStats(), u.Stats())
		if c.nodes[1].got(nonce, true)+c.nodes[1].got(nonce, false) != 0 {
			t.Error("a frame from a non-validator was delivered")
		}
	})
}

func TestValidatorSetChange(t *testing.T) {
	c := newMockCluster(t, 4, nil)
	key := newKeys(t, 1)[0]
	h, err := c.mn.AddPeer(key, ma.StringCast("/ip4/10.1.0.1/tcp/4242"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	keys := []crypto.PrivKey{key}
	for _, nd := range c.nodes {
		keys = append(keys, nd.key)
	}
	bigger := newSet(t, 2, keys)
	newcomer := &node{key: key, addr: mustAddr(t, key), host: h}
	c.startNode(newcomer, bigger, testConfig(nil))
	for _, nd := range c.nodes {
		nd.router.SetValidators(bigger)
	}

	nonce := c.broadcast(0)
	eventually(t, 5*time.Second, func() bool { return newcomer.got(nonce, true) == 1 }, "the added validator never delivered")
	if got := c.missing(nonce, []int{1, 2, 3}); len(got) != 0 {
		eventually(t, 5*time.Second, func() bool { return len(c.missing(nonce, []int{1, 2, 3})) == 0 },
			"validators %v never delivered", c.missing(nonce, []int{1, 2, 3}))
	}

	// A broadcast planned on the old set, still in flight, keeps going.
	env, old := newEnvelope(t, c.nodes[0].key, "old set")
	c.nodes[0].router.mu.Lock()
	prev := c.nodes[0].router.recent[0]
	c.nodes[0].router.mu.Unlock()
	for _, tg := range OriginTargets(ModeCover, 4, 0, 1) {
		_ = c.nodes[0].router.sendTree(delegation{view: prev, mode: ModeCover, target: tg, msg: env})
	}
	eventually(t, 5*time.Second, func() bool { return len(c.missing(old, []int{1, 2, 3})) == 0 },
		"old-set broadcast missed %v", c.missing(old, []int{1, 2, 3}))
	if newcomer.got(old, true) != 0 {
		t.Error("a broadcast planned on the old set reached a validator added later")
	}
}

// TestACKTimeoutFollowsTheClock drives the timeout with a fake clock: no
// re-delegation happens until the clock passes ACKTimeout.
func TestACKTimeoutFollowsTheClock(t *testing.T) {
	clock := newFakeClock()
	c := newMockCluster(t, 3, func(cfg *Config) {
		cfg.Clock = clock
		cfg.ACKTimeout = time.Minute
	})
	// From 0 with N=3 cover sends to 1 (span 1..1) and 2 (span 2..2):
	// neither can be re-delegated, so a black hole at 1 ends in GaveUp.
	c.crash(1, true)
	env, nonce := newEnvelopeAt(t, c.nodes[0].key, "clock", clock.Now())
	if err := c.nodes[0].router.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return c.nodes[0].router.Stats().AcksReceived == 1 }, "validator 2 never acknowledged")
	// A node acknowledges a frame before its handler has the message.
	eventually(t, 5*time.Second, func() bool { return c.nodes[2].got(nonce, true) == 1 }, "validator 2 did not deliver")
	if s := c.nodes[0].router.Stats(); s.AckTimeouts != 0 || s.GaveUp != 0 {
		t.Fatalf("timed out before the clock moved: %+v", s)
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if s := c.nodes[0].router.Stats(); s.AckTimeouts != 0 {
		t.Fatalf("timed out early: %+v", s)
	}
	clock.Advance(time.Nanosecond)
	if s := c.nodes[0].router.Stats(); s.AckTimeouts != 1 || s.GaveUp != 1 || s.Retries != 0 {
		t.Fatalf("after the deadline: timeouts %d, gave up %d, retries %d; want 1, 1, 0", s.AckTimeouts, s.GaveUp, s.Retries)
	}
}

func TestSilentNodeDeliversAndAcknowledgesButDoesNotForward(t *testing.T) {
	const n = 9
	// One level per hop: origin 0 hands span 3..5 to validator 3, which
	// would forward to 4 and 5.
	ternary := func(cfg *Config) { cfg.LevelsPerHop = 1 }
	c := newMockCluster(t, n, ternary)
	_ = c.nodes[3].router.Close()
	silentCfg := testConfig(func(cfg *Config) { ternary(cfg); cfg.Silent = true })
	c.startNode(c.nodes[3], c.set, silentCfg)
	nonce := c.broadcast(0)
	plan := Broadcast(n, 0, ModeCover, Options{Silent: silentAt(n, 3)})
	covered := slices.DeleteFunc(others(n, 0), func(i int) bool { return slices.Contains(plan.Uncovered, i) })
	eventually(t, 5*time.Second, func() bool { return len(c.missing(nonce, covered)) == 0 }, "missing %v", c.missing(nonce, covered))
	time.Sleep(100 * time.Millisecond) // absence cannot be awaited: a late forward would show by now
	if got := c.missing(nonce, others(n, 0)); !slices.Equal(got, plan.Uncovered) || len(got) == 0 {
		t.Errorf("missed %v, plan says %v", got, plan.Uncovered)
	}
	if s := c.nodes[3].router.Stats(); s.TreeSent != 0 || s.AcksSent != 1 {
		t.Errorf("silent node sent %d tree frames and %d ACKs, want 0 and 1", s.TreeSent, s.AcksSent)
	}
	if s := c.nodes[0].router.Stats(); s.AckTimeouts != 0 {
		t.Errorf("silent node was treated as down: %+v", s)
	}
}

func silentAt(n int, idx ...int) []bool {
	s := make([]bool, n)
	for _, i := range idx {
		s[i] = true
	}
	return s
}

func TestRedundancySendsLevelZeroCopiesToEveryone(t *testing.T) {
	const n = 9
	c := newMockCluster(t, n, func(cfg *Config) { cfg.Redundancy = true })
	nonce := c.broadcast(4)
	eventually(t, 5*time.Second, func() bool {
		for _, i := range others(n, 4) {
			if c.nodes[i].got(nonce, true) != 2 {
				return false
			}
		}
		return true
	}, "not every validator delivered a tree copy and a redundant copy")
	if got := c.sum(func(s Stats) uint64 { return s.RedundantReceived }); got != n-1 {
		t.Errorf("redundant copies received %d, want %d", got, n-1)
	}
	if got := c.sum(func(s Stats) uint64 { return s.TreeSent }); got != n-1 {
		t.Errorf("tree frames %d, want %d: redundant copies must not propagate", got, n-1)
	}
}

func TestCoverDuplicateIsAcknowledgedButNeitherDeliveredNorPropagatedAgain(t *testing.T) {
	c := newMockCluster(t, 9, nil)
	env, nonce := newEnvelope(t, c.nodes[0].key, "twice")
	r := c.nodes[0].router
	// Send validator 3 the same responsibility twice.
	d := delegation{view: r.cur, mode: ModeCover, target: Target{Index: 3, Level: 2, Span: Span{Start: 3, Len: 3}}, msg: env}
	for range 2 {
		if err := r.sendTree(d); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() bool { return c.nodes[3].got(nonce, true) == 1 }, "copy not delivered")
	eventually(t, 5*time.Second, func() bool {
		s := c.nodes[3].router.Stats()
		return s.Duplicates == 1 && s.TreeSent == 2 && s.AcksSent == 2
	}, "validator 3 should count one duplicate, forward 2 frames once and ACK both copies: %+v", c.nodes[3].router.Stats())
	time.Sleep(100 * time.Millisecond) // absence cannot be awaited: a second forward would show by now
	if s := c.nodes[3].router.Stats(); s.TreeSent != 2 || c.nodes[3].got(nonce, true) != 1 {
		t.Errorf("validator 3 forwarded %d frames and delivered %d copies, want 2 and 1", s.TreeSent, c.nodes[3].got(nonce, true))
	}
}

// The ACK and proof transports follow the payload transport's
// configuration, limits included, except for their own protocol and the
// small frame size.
func TestSmallFrameTransportsFollowTheUnicastConfig(t *testing.T) {
	cfg := testConfig(func(c *Config) {
		c.Unicast.MalformedLimit, c.Unicast.IdleTimeout, c.Unicast.MaxStrikeRecords = 7, time.Minute, 9
	})
	u := cfg.smallFrames("/ack")
	if u.ProtocolID != "/ack" || u.MaxMessageSize != maxACKFrame {
		t.Fatalf("protocol %s, max %d; want /ack, %d", u.ProtocolID, u.MaxMessageSize, maxACKFrame)
	}
	if u.MalformedLimit != 7 || u.IdleTimeout != time.Minute || u.MaxStrikeRecords != 9 || u.WriteTimeout != cfg.Unicast.WriteTimeout {
		t.Fatalf("small-frame transport %+v does not follow Config.Unicast", u)
	}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		ok     bool
	}{
		{"defaults are valid", func(*Config) {}, true},
		{"no network", func(c *Config) { c.NetworkID = "" }, false},
		{"unknown mode", func(c *Config) { c.Mode = "flood" }, false},
		{"zero ACK timeout with ACK on", func(c *Config) { c.ACKTimeout = 0 }, false},
		{"zero ACK timeout with ACK off", func(c *Config) { c.ACKTimeout, c.ACK = 0, false }, true},
		{"negative retries", func(c *Config) { c.MaxRetries = -1 }, false},
		{"transport protocol of another network", func(c *Config) { c.Unicast.ProtocolID = ProtocolID("other") }, false},
		{"transport limit without frame overhead", func(c *Config) { c.Unicast.MaxMessageSize = c.MaxMessageSize }, false},
		{"zero seen cache", func(c *Config) { c.SeenCacheSize = 0 }, false},
		{"zero replay window", func(c *Config) { c.ReplayWindow = 0 }, false},
		{"outbound bytes below one message", func(c *Config) { c.OutboundQueueBytes = c.MaxMessageSize - 1 }, false},
		{"delivery bytes below one message", func(c *Config) { c.DeliveryQueueBytes = c.MaxMessageSize - 1 }, false},
		{"no workers", func(c *Config) { c.Workers = 0 }, false},
		{"negative clock skew", func(c *Config) { c.ClockSkew = -1 }, false},
		{"zero levels per hop", func(c *Config) { c.LevelsPerHop = 0 }, false},
		{"levels per hop above the maximum", func(c *Config) { c.LevelsPerHop = MaxLevelsPerHop + 1 }, false},
		{"one level per hop", func(c *Config) { c.LevelsPerHop = 1 }, true},
		{"negative wide-tree limit", func(c *Config) { c.WideMaxValidators = -1 }, false},
		{"negative forwarding slack", func(c *Config) { c.ForwardSlack = -1 }, false},
		{"a proof wait shorter than a transfer", func(c *Config) { c.ForwardFactor = 0.9 }, false},
		{"a proof wait that is not a number", func(c *Config) { c.ForwardFactor = math.NaN() }, false},
		{"a proof wait of one transfer", func(c *Config) { c.ForwardFactor = 1 }, true},
		{"negative laggard time", func(c *Config) { c.LaggardTTL = -1 }, false},
		{"no laggards", func(c *Config) { c.LaggardTTL = 0 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig("net")
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if got := ProtocolID("main"); got != "/rainp2p/main/raintree/1.0.0" {
		t.Errorf("ProtocolID = %q", got)
	}
}

func TestCloseIsIdempotentAndRefusesWork(t *testing.T) {
	c := newMockCluster(t, 2, nil)
	r := c.nodes[0].router
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	env, _ := newEnvelope(t, c.nodes[0].key, "late")
	if err := r.Broadcast(context.Background(), env); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close = %v, want ErrClosed", err)
	}
	if err := r.Send(context.Background(), c.nodes[1].host.ID(), env); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestNewRouterRejectsANonMember(t *testing.T) {
	c := newMockCluster(t, 2, nil)
	stranger := newKeys(t, 1)[0]
	_, err := NewRouter(c.nodes[0].host, mustAddr(t, stranger), c.set, testConfig(nil), func(peer.ID, *wire.Message, bool, bool) {})
	if !errors.Is(err, ErrNotValidator) {
		t.Fatalf("NewRouter for a non-member = %v, want ErrNotValidator", err)
	}
}

func TestUnknownSetFromAValidatorIsDeliveredButNotPropagated(t *testing.T) {
	c := newMockCluster(t, 9, nil)
	env, nonce := newEnvelope(t, c.nodes[0].key, "stale set")
	r := c.nodes[0].router
	stale := &setView{set: c.set, hash: "a set nobody else knows", self: 0}
	d := delegation{view: stale, mode: ModeCover, target: Target{Index: 3, Level: 2, Span: Span{Start: 3, Len: 3}}, msg: env}
	if err := r.sendTree(d); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		return c.nodes[3].router.Stats().UnknownSetDelivered == 1 && c.nodes[3].got(nonce, true) == 1
	}, "not counted or not delivered")
	if c.nodes[3].got(nonce, true) != 1 {
		t.Error("a validator's frame on an unknown set was not delivered")
	}
	time.Sleep(100 * time.Millisecond) // absence cannot be awaited: a forward would show by now
	if s := c.nodes[3].router.Stats(); s.TreeSent != 0 {
		t.Errorf("a frame on an unknown set was forwarded %d times", s.TreeSent)
	}
}

func TestSetValidatorsKeepsRecentSetsByHash(t *testing.T) {
	c := newMockCluster(t, 1, func(cfg *Config) { cfg.RecentSets = 2 })
	keys := []crypto.PrivKey{c.nodes[0].key}
	r := c.nodes[0].router
	sets := []*validators.Set{c.set}
	for h := uint64(2); h <= 4; h++ {
		s := newSet(t, h, keys)
		sets = append(sets, s)
		r.SetValidators(s)
		r.SetValidators(s) // the same set again changes nothing
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range sets {
		known := r.viewLocked(s.Hash()) != nil
		if want := i >= 1; known != want {
			t.Errorf("set at height %d known = %v, want %v (current plus 2 recent)", s.Height(), known, want)
		}
	}
	if r.cur.set != sets[3] {
		t.Error("the last set is not current")
	}
}

func TestReplacedSetsAreAcceptedOnlyForTheirGracePeriod(t *testing.T) {
	clock := newFakeClock()
	c := newMockCluster(t, 1, func(cfg *Config) {
		cfg.Clock = clock
		cfg.RecentSetTTL = time.Minute
	})
	r := c.nodes[0].router
	next := newSet(t, 2, []crypto.PrivKey{c.nodes[0].key})
	r.SetValidators(next)
	known := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.viewLocked(c.set.Hash()) != nil
	}
	clock.Advance(time.Minute)
	if !known() {
		t.Fatal("the replaced set was forgotten within its grace period")
	}
	clock.Advance(time.Second)
	if known() {
		t.Fatal("the replaced set is still accepted after its grace period")
	}
}

// A slow application must not stall RainTree: ACKs still go out at once,
// frames are still forwarded, and what the handler cannot take is dropped
// and counted.
func TestSlowHandlerDelaysNeitherACKsNorForwarding(t *testing.T) {
	const n = 9
	c := newMockCluster(t, n, func(cfg *Config) { cfg.ACKTimeout = time.Second })
	// Validator 3 holds span 3..5 from origin 0 and forwards to 4 and 5.
	_ = c.nodes[3].router.Close()
	block := make(chan struct{})
	slow := testConfig(func(cfg *Config) { cfg.DeliveryQueueLen = 1 })
	r, err := NewRouter(c.nodes[3].host, c.nodes[3].addr, c.set, slow, func(peer.ID, *wire.Message, bool, bool) { <-block })
	if err != nil {
		t.Fatal(err)
	}
	c.nodes[3].router = r
	t.Cleanup(func() { _ = r.Close() })
	t.Cleanup(func() { close(block) }) // runs first

	const broadcasts = 5
	var ids []wire.MessageID
	for range broadcasts {
		ids = append(ids, c.broadcast(0))
	}
	for _, id := range ids {
		eventually(t, 5*time.Second, func() bool { return len(c.missing(id, []int{4, 5})) == 0 },
			"validators behind the slow one missed %v", c.missing(id, []int{4, 5}))
	}
	eventually(t, 5*time.Second, func() bool {
		return c.nodes[0].router.Stats().AcksReceived == uint64(broadcasts*len(OriginTargets(ModeCover, n, 0, DefaultLevelsPerHop)))
	},
		"origin got %d ACKs", c.nodes[0].router.Stats().AcksReceived)
	// One delivery is in the handler, one in the queue, the rest dropped.
	eventually(t, 5*time.Second, func() bool { return r.Stats().Dropped.DeliveryFull == broadcasts-2 },
		"delivery drops %d, want %d", r.Stats().Dropped.DeliveryFull, broadcasts-2)
	if s := c.nodes[0].router.Stats(); s.AckTimeouts != 0 || s.Retries != 0 {
		t.Fatalf("a slow handler caused ACK timeouts: %+v", s)
	}
}

// The mode is the receiver's own: a frame that claims reference mode is
// planned, and remembered, as cover, so replaying it forwards nothing.
func TestFrameModeIsIgnoredAndReplaysAreNotForwarded(t *testing.T) {
	c := newMockCluster(t, 9, nil)
	env, id := newEnvelope(t, c.nodes[0].key, "replayed")
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Data: env.Raw, MessageId: id[:], Level: 2,
		Mode: string(ModeReference), SetHeight: c.set.Height(), SetHash: c.set.Hash(), SpanStart: 3, SpanLen: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := c.nodes[0].router.uni.Send(context.Background(), c.nodes[3].host.ID(), frame); err != nil {
			t.Fatal(err)
		}
	}
	want := uint64(len(CoverTargets(9, Span{Start: 3, Len: 3}, 2, DefaultLevelsPerHop)))
	eventually(t, 5*time.Second, func() bool {
		s := c.nodes[3].router.Stats()
		return s.Duplicates == 4 && s.TreeSent == want && c.nodes[3].got(id, true) == 1
	}, "stats %+v", c.nodes[3].router.Stats())
	time.Sleep(100 * time.Millisecond) // anything forwarded twice would show by now
	if s := c.nodes[3].router.Stats(); s.TreeSent != want || c.nodes[3].got(id, true) != 1 {
		t.Fatalf("validator 3 forwarded %d frames and delivered %d times; want its cover targets once and one delivery", s.TreeSent, c.nodes[3].got(id, true))
	}
}

// A relay that alters a signed envelope is caught by the signature: the
// frame is dropped, counted, reported against the relay, and not
// acknowledged, so an honest upstream would re-delegate.
func TestAlteredRelayIsDroppedCountedAndReported(t *testing.T) {
	var mu sync.Mutex
	reported := map[peer.ID]int{}
	c := newMockCluster(t, 4, func(cfg *Config) {
		cfg.OnInvalid = func(p peer.ID, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported[p]++
		}
	})
	env, id := newEnvelope(t, c.nodes[2].key, "genuine")
	forged := proto.Clone(env.Envelope).(*wire.Envelope)
	forged.Content = mustAny(t, "forged")
	raw, err := proto.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	forgedID := wire.ComputeID(testNetwork, forged)
	for _, mid := range [][]byte{id[:], forgedID[:]} {
		frame, err := proto.Marshal(&wire.RainTreeMessage{
			Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Data: raw, MessageId: mid, Level: 1,
			SetHeight: c.set.Height(), SetHash: c.set.Hash(), SpanStart: 1, SpanLen: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[0].router.uni.Send(context.Background(), c.nodes[1].host.ID(), frame); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		d := c.nodes[1].router.Stats().Dropped
		return d.BadSignature+d.Malformed == 2
	}, "drops %+v", c.nodes[1].router.Stats().Dropped)
	mu.Lock()
	defer mu.Unlock()
	if reported[c.nodes[0].host.ID()] != 2 || len(reported) != 1 {
		t.Fatalf("reported %v, want the relay twice", reported)
	}
	if s := c.nodes[1].router.Stats(); s.AcksSent != 0 || c.nodes[1].got(id, true)+c.nodes[1].got(forgedID, true) != 0 {
		t.Fatalf("an altered frame was acknowledged or delivered: %+v", s)
	}
}

func mustAny(t *testing.T, s string) *anypb.Any {
	t.Helper()
	a, err := anypb.New(wrapperspb.String(s))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestInboxIsBoundedFairAndInOrder(t *testing.T) {
	b := newInbox(2, 100)
	f := func(size int) inFrame { return inFrame{m: &wire.RainTreeMessage{Level: uint32(size)}, size: size} }
	if !b.push("a", f(10)) || !b.push("a", f(11)) || b.push("a", f(12)) {
		t.Fatal("the per-peer bound is not 2")
	}
	if !b.push("b", f(70)) || b.push("c", f(10)) {
		t.Fatal("the byte bound is not 100")
	}
	var order []string
	for range 3 {
		p, fr, ok := b.next()
		if !ok {
			t.Fatal("closed")
		}
		order = append(order, fmt.Sprintf("%s%d", string(p), fr.m.GetLevel()))
		b.done(p)
	}
	if got := strings.Join(order, " "); got != "a10 b70 a11" {
		t.Fatalf("served %s, want peers in turn and each in order", got)
	}
	b.close()
	if _, _, ok := b.next(); ok || b.push("a", f(1)) {
		t.Fatal("a closed inbox still works")
	}
}

// A burst of valid frames from a validator is handled by a bounded number
// of goroutines: workers, one sender per target and the ACK senders, not
// one goroutine per frame and target. Only goroutines running this
// module's code are counted: libp2p's own (identify pushes, mock streams)
// come and go as the cluster settles, more so on one CPU. The first frame
// warms up the streams and senders the rest reuse.
func TestABurstOfFramesUsesBoundedGoroutines(t *testing.T) {
	c := newMockCluster(t, 9, nil)
	const burst = 300
	frames := make([][]byte, 1+burst)
	for i := range frames {
		env, id := newEnvelope(t, c.nodes[0].key, fmt.Sprintf("burst %d", i))
		f, err := proto.Marshal(&wire.RainTreeMessage{
			Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Data: env.Raw, MessageId: id[:], Level: 2,
			SetHeight: c.set.Height(), SetHash: c.set.Hash(), SpanStart: 3, SpanLen: 3,
		})
		if err != nil {
			t.Fatal(err)
		}
		frames[i] = f
	}
	send := func(f []byte) {
		if err := c.nodes[0].router.uni.Send(context.Background(), c.nodes[3].host.ID(), f); err != nil {
			t.Fatal(err)
		}
	}
	r3 := c.nodes[3].router
	send(frames[0])
	eventually(t, 10*time.Second, func() bool {
		s := r3.Stats()
		return s.TreeReceived == 1 && s.AcksSent == 1 && s.TreeSent == 2 && s.AcksReceived == 2
	}, "warm-up %+v", r3.Stats())
	frames = frames[1:]
	base := ownGoroutines(t)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int64(ownGoroutines(t)); n > peak.Load() {
				peak.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	for _, f := range frames {
		send(f)
	}
	eventually(t, 20*time.Second, func() bool {
		s := r3.Stats()
		return s.TreeReceived+s.Dropped.InboundFull == 1+burst && s.AcksSent+s.Dropped.ACKQueueFull >= s.TreeReceived
	}, "stats %+v", r3.Stats())
	close(stop)
	<-sampled
	// Validator 3 forwards every frame to 2 targets and acknowledges it:
	// spawning per frame would add hundreds of goroutines.
	t.Logf("goroutines: %d before, peak %d", base, peak.Load())
	if extra := peak.Load() - int64(base); extra > 20 {
		t.Fatalf("the burst raised the goroutine count by %d", extra)
	}
	if s := r3.Stats(); s.TreeSent+s.Dropped.OutboundFull != 2*s.TreeReceived {
		eventually(t, 10*time.Second, func() bool {
			s := r3.Stats()
			return s.TreeSent+s.Dropped.OutboundFull == 2*s.TreeReceived
		}, "forwarded %+v", r3.Stats())
	}
}

// A neighbour with no connection, once the set has been held long enough
// to connect to it, costs its span no dial: the span goes to the next
// validator at once.
func TestADisconnectedNeighbourIsSkippedWithoutADial(t *testing.T) {
	tests := []struct {
		name                       string
		after                      time.Duration
		wantSkipped, wantSendError uint64
	}{
		{"it is skipped once the set is held long enough", time.Nanosecond, 1, 0},
		{"with skipping off it is dialled first", 0, 0, 1},
		{"it is dialled while the set is new", time.Hour, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 9
			// One level per hop: origin 0 hands span 3..5 to validator 3.
			c := newMockCluster(t, n, func(cfg *Config) { cfg.LevelsPerHop, cfg.SkipDisconnectedAfter = 1, tt.after })
			a, b := c.nodes[0].host.ID(), c.nodes[3].host.ID()
			if err := c.mn.UnlinkPeers(a, b); err != nil {
				t.Fatal(err)
			}
			if err := c.mn.DisconnectPeers(a, b); err != nil {
				t.Fatal(err)
			}
			id := c.broadcast(0)
			live := []int{1, 2, 4, 5, 6, 7, 8}
			eventually(t, 5*time.Second, func() bool { return len(c.missing(id, live)) == 0 },
				"validators %v never delivered", c.missing(id, live))
			eventually(t, 5*time.Second, func() bool { return c.nodes[0].router.Stats().Retries >= 1 },
				"the span of validator 3 was never re-delegated: %+v", c.nodes[0].router.Stats())
			if s := c.nodes[0].router.Stats(); s.SkippedDisconnected != tt.wantSkipped || s.SendErrors != tt.wantSendError {
				t.Errorf("skipped %d, send errors %d; want %d and %d", s.SkippedDisconnected, s.SendErrors, tt.wantSkipped, tt.wantSendError)
			}
		})
	}
}

// When a span is re-delegated to a validator this node has no connection
// to, that validator gets a span of itself alone and the first connected
// validator after it the rest: the subtree does not wait for a dial.
func TestARedelegatedSpanGoesToAConnectedValidator(t *testing.T) {
	const n = 27
	// One level per hop: origin 0 hands span 9..17 to validator 9.
	c := newMockCluster(t, n, func(cfg *Config) { cfg.LevelsPerHop, cfg.SkipDisconnectedAfter = 1, time.Nanosecond })
	origin := c.nodes[0].host.ID()
	down, unconnected := c.nodes[9].host.ID(), c.nodes[10].host.ID()
	if err := c.mn.UnlinkPeers(origin, down); err != nil {
		t.Fatal(err)
	}
	for _, p := range []peer.ID{down, unconnected} {
		if err := c.mn.DisconnectPeers(origin, p); err != nil {
			t.Fatal(err)
		}
	}
	id := c.broadcast(0)
	live := slices.DeleteFunc(others(n, 0), func(i int) bool { return i == 9 })
	eventually(t, 5*time.Second, func() bool { return len(c.missing(id, live)) == 0 },
		"validators %v never delivered", c.missing(id, live))
	if s := c.nodes[10].router.Stats(); s.TreeSent != 0 {
		t.Errorf("validator 10, reached by a dial, forwarded %d frames; want none (a span of itself)", s.TreeSent)
	}
	if s := c.nodes[11].router.Stats(); s.TreeSent == 0 {
		t.Error("validator 11, connected, forwarded nothing; want the rest of the span")
	}
	if s := c.nodes[0].router.Stats(); s.SkippedDisconnected != 1 || s.Retries != 1 {
		t.Errorf("origin skipped %d and re-delegated %d times; want 1 and 1", s.SkippedDisconnected, s.Retries)
	}
}

// ownGoroutines counts the goroutines running this module's code, the
// tests' own excepted.
func ownGoroutines(t *testing.T) int {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Error(err)
	}
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		if !strings.Contains(g, "github.com/rainp2p/rainp2p/") || strings.Contains(g, "_test.go:") {
			continue
		}
		var count int
		if _, err := fmt.Sscanf(g, "%d @", &count); err == nil {
			n += count
		}
	}
	return n
}

// Attack: a validator replays another origin's message in frames whose
// unused fields it makes up (the span of a copy that hands nothing out,
// a reference-mode level past the plan). Each used to be a seen entry of
// its own, charged to the honest origin, and enough of them evicted the
// origin's entries and raised its floor: its older, in-window tree frame
// was then dropped as stale. Now they are one entry.
func TestMadeUpFieldsOfAReplayedFrameCannotRaiseItsOriginsFloor(t *testing.T) {
	const n, cache, origin, victim, attacker = 9, 16, 0, 3, 1
	for _, tt := range []struct {
		name   string
		mode   Mode
		replay func(i int) *wire.RainTreeMessage // frame i of cache+1, before Data, MessageId, SetHash
		honest *wire.RainTreeMessage
	}{
		{"level-0 copies with made-up spans, cover mode", ModeCover,
			func(i int) *wire.RainTreeMessage {
				return &wire.RainTreeMessage{Level: 0, SpanStart: uint32(i), SpanLen: uint32(i)}
			},
			&wire.RainTreeMessage{Level: 2, SpanStart: victim, SpanLen: 3}},
		{"frames with levels past the plan, reference mode", ModeReference,
			func(i int) *wire.RainTreeMessage { return &wire.RainTreeMessage{Level: uint32(10 + i)} },
			&wire.RainTreeMessage{Level: 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := newMockCluster(t, n, func(cfg *Config) { cfg.SeenCacheSize, cfg.Mode = cache, tt.mode })
			now := time.Now()
			older, olderID := newEnvelopeAt(t, c.nodes[origin].key, "older", now)
			newer, newerID := newEnvelopeAt(t, c.nodes[origin].key, "newer", now.Add(time.Millisecond))
			r := c.nodes[victim].router
			frame := func(m *wire.RainTreeMessage, env *wire.Message, id wire.MessageID) *wire.RainTreeMessage {
				m.Kind, m.Data, m.MessageId, m.SetHash = wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, env.Raw, id[:], []byte(r.cur.hash)
				return m
			}
			for i := range cache + 1 {
				r.onBroadcast(c.nodes[attacker].host.ID(), frame(tt.replay(i), newer, newerID))
			}
			if got := r.Stats().Duplicates; got != cache {
				t.Errorf("%d of the %d replays counted as duplicates, want all but the first", got, cache+1)
			}
			r.onBroadcast(c.nodes[origin].host.ID(), frame(tt.honest, older, olderID))
			if s := r.Stats(); s.Dropped.Stale != 0 {
				t.Fatalf("the origin's own in-window frame was dropped as stale (%d)", s.Dropped.Stale)
			}
		})
	}
}
