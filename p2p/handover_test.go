package p2p_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// A full node hands a small broadcast straight to the validators heading
// the parts of the ring, which it keeps connected, so its broadcast skips
// the hop through a parent; every validator still gets it once, and each
// part is started by its head.
func TestAFullNodeHandsItsBroadcastToTheHeadsOfTheRingsParts(t *testing.T) {
	const validatorsN = 12
	nodes := network(t, validatorsN, 1, func(c *p2p.Config) {
		c.Background.BootstrapPeers = nil
		c.Background.DHT = false // only the validator set can connect the full node
	})
	full := nodes[validatorsN]
	heads := p2p.HandoverHeads(full.mod)
	if len(heads) != 9 {
		t.Fatalf("the full node hands over to %d heads, want 9 (two levels over 12 validators)", len(heads))
	}
	waitFor(t, 20*time.Second, "the full node to connect its heads", func() bool {
		return !slices.ContainsFunc(heads, func(id peer.ID) bool { return !connected(full, id) })
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env, err := full.mod.Broadcast(ctx, wrapperspb.String("from a full node"))
	if err != nil {
		t.Fatal(err)
	}
	waitDeliveredOnce(t, nodes[:validatorsN], env.GetNonce())
	bg := full.mod.Stats().Background
	var parts, refused, received uint64
	count := func() {
		parts, refused, received = 0, 0, 0
		for _, n := range nodes[:validatorsN] {
			s := n.mod.Stats()
			parts, refused, received = parts+s.RainTree.PartsRelayed, refused+s.RainTree.HandoversRefused, received+s.Background.Submissions
		}
	}
	// A head may deliver by gossip before its share is handled.
	waitFor(t, 20*time.Second, "every share to be handled", func() bool { count(); return received >= bg.SharesSent && parts >= 9 })
	// Every share went straight to its head, but the parent's own, if it
	// heads a part: it came as the parent's submission.
	if bg.SharesSent < uint64(len(heads))-1 || received-bg.SharesSent > 1 || bg.Submitted != 1 || bg.SubmitErrors != 0 || parts != 9 || refused != 0 {
		t.Errorf("shares sent %d of %d, submissions received %d, submitted %d (errors %d), parts relayed %d, refused %d; want 8 or 9, at most one more, 1 (0), 9, 0",
			bg.SharesSent, len(heads), received, bg.Submitted, bg.SubmitErrors, parts, refused)
	}
	for _, n := range nodes[:validatorsN] {
		if d := n.deliveries(env.GetNonce()); len(d) != 1 {
			t.Errorf("validator %s delivered %d copies", n.host.ID(), len(d))
		}
	}
}

// A full node that broadcasts an envelope another node signed hands it
// over whole: validators take parts only from the origin, so parts would
// only earn it refusals.
func TestAFullNodeHandsAnotherNodesEnvelopeOverWhole(t *testing.T) {
	const validatorsN = 12
	nodes := network(t, validatorsN, 1, func(c *p2p.Config) {
		c.Background.BootstrapPeers = nil
		c.Background.DHT = false
	})
	full := nodes[validatorsN]
	heads := p2p.HandoverHeads(full.mod)
	waitFor(t, 20*time.Second, "the full node to connect its heads", func() bool {
		return !slices.ContainsFunc(heads, func(id peer.ID) bool { return !connected(full, id) })
	})
	msg := signedElsewhere(t, "signed elsewhere")
	env := msg.Envelope
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := full.mod.BroadcastEnvelope(ctx, msg.Envelope); err != nil {
		t.Fatal(err)
	}
	waitDeliveredOnce(t, nodes[:validatorsN], env.GetNonce())
	var parts, refused, invalid uint64
	for _, n := range nodes[:validatorsN] {
		s := n.mod.Stats()
		parts, refused, invalid = parts+s.RainTree.PartsRelayed, refused+s.RainTree.HandoversRefused, invalid+s.InvalidPeers
	}
	if bg := full.mod.Stats().Background; bg.SharesSent != 0 || bg.Submitted != 1 || parts != 0 || refused != 0 || invalid != 0 {
		t.Errorf("shares sent %d, submitted %d, parts relayed %d, refused %d, invalid peers %d; want 0, 1, 0, 0, 0",
			bg.SharesSent, bg.Submitted, parts, refused, invalid)
	}
}

func connected(n *node, id peer.ID) bool {
	return slices.Contains(n.mod.Host().Network().Peers(), id)
}

// Attack: a peer hands a validator another node's broadcast with a part
// of one validator, before the origin does, so that the validator would
// start it on itself alone. The validator refuses the handover, holds it
// against the peer, and starts the broadcast on the whole ring: every
// validator gets it once, through RainTree.
func TestAHandoverOfAnotherNodesBroadcastIsRefusedAndTheWholeRingRelaysIt(t *testing.T) {
	const validatorsN = 9
	nodes := network(t, validatorsN, 0, nil)
	victim := nodes[4]
	set := victim.mod.ValidatorSet()
	self, _ := set.IndexOfPeer(victim.host.ID())

	msg := signedElsewhere(t, "someone else's")
	env := msg.Envelope
	frame, err := wire.EncodeSubmission(msg.Raw, wire.Handover{SetHash: set.Hash(), Parts: []wire.Part{{Start: self, Len: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u := backgroundUnicastTo(ctx, t, victim)
	before := victim.mod.Stats()
	if err := u.Send(ctx, victim.host.ID(), frame); err != nil {
		t.Fatal(err)
	}
	waitDeliveredOnce(t, nodes, env.GetNonce())
	s := victim.mod.Stats()
	if s.RainTree.HandoversRefused != 1 || s.RainTree.PartsRelayed != 0 || s.InvalidPeers != before.InvalidPeers+1 {
		t.Errorf("refused %d, parts relayed %d, invalid peers +%d; want 1, 0, +1",
			s.RainTree.HandoversRefused, s.RainTree.PartsRelayed, s.InvalidPeers-before.InvalidPeers)
	}
	if sent := s.RainTree.TreeSent - before.RainTree.TreeSent; sent < 2 {
		t.Errorf("the victim sent %d tree frames; the whole ring from it takes more than one", sent)
	}
}

// signedElsewhere is a broadcast of text signed by a fresh key, a node
// outside the test network.
func signedElsewhere(t *testing.T, text string) *wire.Message {
	t.Helper()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	env, err := wire.NewEnvelope(wrapperspb.String(text))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := wire.Seal("module-test", env, key.Private, identity.Address{}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// waitDeliveredOnce waits until every node of nodes has delivered the
// envelope with nonce exactly once.
func waitDeliveredOnce(t *testing.T, nodes []*node, nonce uint64) {
	t.Helper()
	waitFor(t, 20*time.Second, "every validator to deliver the broadcast", func() bool {
		for _, n := range nodes {
			if len(n.deliveries(nonce)) != 1 {
				return false
			}
		}
		return true
	})
}

// A full node holds a small message from a validator for as many links as
// RainTree still takes to reach its last validator after that one
// (background forward.go): it reads them off the plan of the broadcast,
// the tree rooted at a validator origin or the handover in parts of
// anyone else, and cannot tell for blocks or for senders outside the set.
func TestAFullNodeKnowsHowManyRainTreeHopsAreStillToGo(t *testing.T) {
	const validatorsN = 20 // two hops, and a hop after a handover's heads
	nodes := network(t, validatorsN, 1, nil)
	fn := nodes[validatorsN]
	set := fn.mod.ValidatorSet()
	n, rt := set.Len(), p2p.DefaultConfig().RainTree
	perHop := rt.LevelsPerHopFor(n, 1024)
	index := func(nd *node) int {
		i, ok := set.IndexOfPeer(nd.host.ID())
		if !ok {
			t.Fatalf("%s is not in the set", nd.host.ID())
		}
		return i
	}
	sign := func(by *node, size int) *wire.Message {
		env, err := wire.NewEnvelope(wrapperspb.String(strings.Repeat("x", size)))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := wire.Seal("module-test", env, by.key.Private, identity.Address{}, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	root := nodes[3]
	var last *node // a validator the root's tree reaches at its last hop
	for _, nd := range nodes[:validatorsN] {
		if raintree.Hops(n, index(nd)-index(root), perHop) == raintree.TreeHops(n, perHop) {
			last = nd
		}
	}
	if last == nil {
		t.Fatalf("no validator of %d is at the last hop of a tree %d hops deep", n, raintree.TreeHops(n, perHop))
	}
	start := raintree.HandoverStart(n, []byte(fn.host.ID()))
	head := raintree.HandoverTargets(n, start, perHop)[0].Index
	hop, handoverLast := raintree.HandoverHops(n, head-start, perHop), raintree.HandoverTreeHops(n, perHop)
	tests := []struct {
		name   string
		msg    *wire.Message
		from   peer.ID
		want   int
		wantOK bool
	}{
		{"from the root of a validator's broadcast: the whole tree", sign(root, 1024), root.host.ID(), raintree.TreeHops(n, perHop), true},
		{"from a validator at the tree's last hop: none", sign(root, 1024), last.host.ID(), 0, true},
		{"from the head of a full node's part: the rest of the handover", sign(fn, 1024), set.At(head).PeerID, handoverLast - hop, true},
		{"a block: cannot tell", sign(root, rt.PaceBytes), root.host.ID(), 0, false},
		{"from outside the set: cannot tell", sign(root, 1024), fn.host.ID(), 0, false},
	}
	if raintree.TreeHops(n, perHop) < 2 || handoverLast-hop < 1 {
		t.Fatalf("%d validators make a tree of %d hops, a handover of %d after its heads: too shallow to tell the cases apart",
			n, raintree.TreeHops(n, perHop), handoverLast-hop)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := p2p.HopsAfter(fn.mod, tt.msg, tt.from)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("HopsAfter = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// Attack: a peer keeps handing a validator broadcasts over background
// unicast while it closes. Close holds the module's lock while it waits
// for the routers' handlers, so a handler that took that lock hung Close
// for good; the handlers now read the routers without it.
func TestASubmissionArrivingWhileAValidatorClosesDoesNotHangIt(t *testing.T) {
	nodes := network(t, 4, 0, nil)
	victim := nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u := backgroundUnicastTo(ctx, t, victim)
	done := make(chan error, 1)
	go func() {
		done <- p2p.CloseWhile(victim.mod, func(bg *background.Router) {
			frame, err := wire.EncodeBackground(signedElsewhere(t, "submitted while closing").Raw)
			if err != nil {
				t.Error(err)
				return
			}
			before := bg.Stats().Unicast.FramesReceived
			if err := u.Send(ctx, victim.host.ID(), frame); err != nil {
				t.Error(err)
				return
			}
			for bg.Stats().Unicast.FramesReceived == before && ctx.Err() == nil {
				time.Sleep(time.Millisecond) // polling the count
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Close still waiting for a handler that waits for Close's lock")
	}
}

// backgroundUnicastTo is a background unicast router on a fresh host
// connected to n, as any peer could run; both end with the test.
func backgroundUnicastTo(ctx context.Context, t *testing.T, n *node) *unicast.Router {
	t.Helper()
	_, h, _ := newHost(t)
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	u, err := unicast.New(h, unicast.DefaultConfig(background.UnicastProtocolID("module-test")), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}
