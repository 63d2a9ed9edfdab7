package p2p_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// protectedNeighbours lists the set indexes n protects as RainTree
// neighbours.
func protectedNeighbours(n *node, set *validators.Set) []int {
	var out []int
	for i := range set.Len() {
		if n.mod.Host().ConnManager().IsProtected(set.At(i).PeerID, p2p.NeighbourTag) {
			out = append(out, i)
		}
	}
	return out
}

// A validator protects exactly its RainTree neighbours, dials its targets
// itself, and follows set changes; a node that leaves the set protects
// nobody.
func TestValidatorsKeepExactlyTheirRainTreeNeighbours(t *testing.T) {
	const n = 14
	nodes := network(t, n, 0, nil)
	set := nodes[0].mod.ValidatorSet()
	for _, nd := range nodes {
		self, _ := set.IndexOf(nd.key.Address)
		want := raintree.NeighboursOf(raintree.ModeCover, n, self, perHops(n)...)
		if len(want.All()) >= n-1 {
			t.Fatalf("with %d validators every validator is a neighbour; the test needs a larger set", n)
		}
		if got := protectedNeighbours(nd, set); !slices.Equal(got, want.All()) {
			t.Fatalf("validator %d protects %v, want its neighbours %v", self, got, want.All())
		}
		waitFor(t, 20*time.Second, "a validator to connect to its targets", func() bool {
			for _, i := range want.Targets {
				if nd.mod.Host().Network().Connectedness(set.At(i).PeerID) != lpnet.Connected {
					return false
				}
			}
			return true
		})
		st := nd.mod.Status()
		total := st.Connections[p2p.ConnRainTreeNeighbour] + st.Connections[p2p.ConnMesh] + st.Connections[p2p.ConnOther]
		if st.Connections[p2p.ConnRainTreeNeighbour] < len(want.Targets) || total != len(nd.mod.Host().Network().Peers()) {
			t.Errorf("validator %d: connections by kind %v, want at least %d RainTree neighbours and %d in all",
				self, st.Connections, len(want.Targets), len(nd.mod.Host().Network().Peers()))
		}
		if !metricHas(t, nd.mod, "rainp2p_connections", "raintree_neighbour") {
			t.Errorf("validator %d: no rainp2p_connections{kind=raintree_neighbour} metric", self)
		}
	}

	// Drop the last four validators: everyone's neighbours are recomputed,
	// and the dropped ones protect nobody.
	smaller, err := validators.NewSet(2, set.Validators()[:n-4])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, nd := range nodes {
		if err := nd.mod.HandleEvent(ctx, p2p.ValidatorSetChanged{Set: smaller}); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range nodes {
		self, ok := smaller.IndexOf(nd.key.Address)
		got := protectedNeighbours(nd, set)
		if !ok {
			if len(got) > 0 {
				t.Errorf("a node outside the set still protects %v", got)
			}
			continue
		}
		var want []int
		for _, i := range raintree.NeighboursOf(raintree.ModeCover, smaller.Len(), self, perHops(smaller.Len())...).All() {
			j, _ := set.IndexOfPeer(smaller.At(i).PeerID)
			want = append(want, j)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("after the change validator %d protects %v, want %v", self, got, want)
		}
	}
}

// A full node with no bootstrap peers joins through a few validators of
// the set, not all of them, and still receives broadcasts.
func TestFullNodeWithoutBootstrapPeersJoinsThroughAFewValidators(t *testing.T) {
	const validatorsN = 8
	nodes := network(t, validatorsN, 1, func(c *p2p.Config) {
		c.Background.BootstrapPeers = nil
		c.Background.DHT = false // only the validator set can connect the full node
		// Its handover heads would be every validator of so small a set
		// (TestAFullNodeHandsItsBroadcastToTheHeadsOfTheRingsParts).
		c.Background.Gossip.SubmitInParts = false
	})
	full := nodes[validatorsN]
	set := full.mod.ValidatorSet()
	waitFor(t, 20*time.Second, "the full node to reach its join peers", func() bool {
		return validatorPeers(full, set) >= p2p.DefaultFullNodeValidatorPeers
	})
	// Nobody else knows the full node's address, so these are its own dials.
	if got := validatorPeers(full, set); got != p2p.DefaultFullNodeValidatorPeers {
		t.Errorf("full node connected to %d of %d validators, want its %d join peers", got, validatorsN, p2p.DefaultFullNodeValidatorPeers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env, err := nodes[0].mod.Broadcast(ctx, wrapperspb.String("to everyone"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the full node to receive the broadcast", func() bool {
		return len(full.deliveries(env.GetNonce())) == 1
	})
}

func validatorPeers(n *node, set *validators.Set) int {
	c := 0
	for _, p := range n.mod.Host().Network().Peers() {
		if _, ok := set.IndexOfPeer(p); ok {
			c++
		}
	}
	return c
}

// metricHas reports whether the module's collector exports name with a
// label value.
func metricHas(t *testing.T, m *p2p.Module, name, label string) bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(p2p.NewCollector(m)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetValue() == label {
					return true
				}
			}
		}
	}
	return false
}

// The set's addresses are hints: a node copies a validator's addresses
// into its peerstore only when it dials it, and a unicast to a validator
// it was never connected to still arrives.
func TestValidatorAddressesAreHintsNotAPeerstoreCopy(t *testing.T) {
	const n = 14
	nodes := network(t, n, 0, func(c *p2p.Config) { c.Background.DHT = false })
	set := nodes[0].mod.ValidatorSet()
	from := nodes[0]
	self, _ := set.IndexOf(from.key.Address)
	near := raintree.NeighboursOf(raintree.ModeCover, n, self, perHops(n)...).All()
	var far *node
	for _, nd := range nodes[1:] {
		i, _ := set.IndexOf(nd.key.Address)
		if !slices.Contains(near, i) && from.mod.Host().Network().Connectedness(nd.host.ID()) != lpnet.Connected {
			far = nd
			break
		}
	}
	if far == nil {
		t.Fatal("every validator is a neighbour of node 0 or connected to it; the test needs a larger set")
	}
	if addrs := from.mod.Host().Peerstore().Addrs(far.host.ID()); len(addrs) > 0 {
		t.Fatalf("the peerstore already holds %v for a validator this node never dialled", addrs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env, err := from.mod.Send(ctx, far.key.Address, wrapperspb.String("far away"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the unicast to a validator dialled on demand", func() bool {
		return len(far.deliveries(env.GetNonce())) == 1
	})
}

// A validator that restarts on the same key and address rejoins: it dials
// its RainTree targets again, its senders reconnect, and broadcasts reach
// it and come from it as before.
func TestRestartedValidatorRejoins(t *testing.T) {
	const n = 10
	nodes := network(t, n, 2, nil)
	set := nodes[0].mod.ValidatorSet()
	self0, _ := set.IndexOf(nodes[0].key.Address)
	var back *node
	for _, nd := range nodes[1:n] {
		if i, _ := set.IndexOf(nd.key.Address); slices.Contains(raintree.NeighboursOf(raintree.ModeCover, n, self0, perHops(n)...).Targets, i) {
			back = nd
			break
		}
	}
	addrs := back.host.Addrs()
	if err := back.mod.Close(); err != nil {
		t.Fatal(err)
	}
	<-back.done
	if err := back.host.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the others to see it gone", func() bool {
		return nodes[0].mod.Host().Network().Connectedness(back.host.ID()) != lpnet.Connected
	})

	h, err := libp2p.New(libp2p.Identity(back.key.Private), libp2p.ListenAddrs(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	cfg := p2p.DefaultConfig()
	cfg.NetworkID = "module-test"
	cfg.Key, cfg.Host = back.key, h
	cfg.Validators = validators.StaticProvider{Set: set}
	cfg.Height = 1
	cfg.Background.AdvertiseInterval = time.Second
	m, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back.host, back.mod, back.done = h, m, make(chan struct{}) // the network's cleanup closes these
	go func() {
		defer close(back.done)
		for {
			select {
			case d := <-m.Deliveries():
				back.mu.Lock()
				back.got[d.Envelope.GetNonce()] = append(back.got[d.Envelope.GetNonce()], d)
				back.mu.Unlock()
			case <-m.Done():
				return
			}
		}
	}()
	waitFor(t, 20*time.Second, "its sender to reconnect and gossip to resume", func() bool {
		return nodes[0].mod.Host().Network().Connectedness(h.ID()) == lpnet.Connected &&
			m.Status().Peers["background"] >= 1
	})
	for _, origin := range []*node{nodes[0], back} {
		env, err := origin.mod.Broadcast(ctx, wrapperspb.String("after the restart"))
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "every node to receive the broadcast", func() bool {
			for _, nd := range nodes {
				if nd != origin && len(nd.deliveries(env.GetNonce())) != 1 {
					return false
				}
			}
			return true
		})
	}
}

// perHops is what a default node broadcasts with over n validators.
func perHops(n int) []int { return raintree.DefaultConfig("net").PerHops(n) }
