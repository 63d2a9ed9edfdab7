package p2p_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is one module under test with everything it delivered.
type node struct {
	key  *identity.Key
	host host.Host
	mod  *p2p.Module

	mu   sync.Mutex
	got  map[uint64][]p2p.Delivery
	done chan struct{}
}

func (n *node) deliveries(nonce uint64) []p2p.Delivery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]p2p.Delivery(nil), n.got[nonce]...)
}

// collect records m's deliveries until it closes, then closes n.done.
func (n *node) collect(m *p2p.Module) {
	defer close(n.done)
	for {
		select {
		case d := <-m.Deliveries():
			n.mu.Lock()
			n.got[d.Envelope.GetNonce()] = append(n.got[d.Envelope.GetNonce()], d)
			n.mu.Unlock()
		case <-m.Done():
			return
		}
	}
}

// newHost creates a key and a real loopback TCP host for it, and the
// validator entry that describes it.
func newHost(t *testing.T) (*identity.Key, host.Host, validators.Validator) {
	t.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// TCP only: a QUIC dial still in flight when a host closes can leave
	// quic-go's transport goroutines behind (go-libp2p issue 2514), which
	// goleak would report against whichever test ran last.
	h, err := libp2p.New(libp2p.Identity(k.Private), libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	return k, h, validators.Validator{PublicKey: k.Private.GetPublic(), Multiaddrs: h.Addrs()}
}

// network starts validators+fullnodes modules on real loopback TCP hosts.
func network(t *testing.T, nValidators, nFull int, tweak func(*p2p.Config)) []*node {
	t.Helper()
	nodes := make([]*node, nValidators+nFull)
	var members []validators.Validator
	for i := range nodes {
		k, h, v := newHost(t)
		nodes[i] = &node{key: k, host: h, got: map[uint64][]p2p.Delivery{}, done: make(chan struct{})}
		if i < nValidators {
			members = append(members, v)
		}
	}
	set, err := validators.NewSet(1, members)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, n := range nodes {
		cfg := p2p.DefaultConfig()
		cfg.NetworkID = "module-test"
		cfg.Key, cfg.Host = n.key, n.host
		cfg.Validators = validators.StaticProvider{Set: set}
		cfg.Height = 1
		cfg.Background.AdvertiseInterval = time.Second
		if i >= nValidators { // full nodes know one validator, as an operator would configure
			cfg.Background.BootstrapPeers = []peer.AddrInfo{{ID: nodes[0].host.ID(), Addrs: nodes[0].host.Addrs()}}
		}
		if tweak != nil {
			tweak(&cfg)
		}
		m, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		n.mod = m
		go n.collect(m)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if err := n.mod.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			<-n.done
			n.host.Close()
		}
	})
	waitFor(t, 20*time.Second, "gossip mesh", func() bool {
		for _, n := range nodes {
			if len(nodes) == 1 {
				break
			}
			if n.mod.Status().Peers["background"] < 1 {
				return false
			}
		}
		return true
	})
	return nodes
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			for _, e := range explain {
				t.Log(e())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBroadcastReachesEveryNodeExactlyOnce(t *testing.T) {
	nodes := network(t, 4, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		origin int
		// which router must have brought it to validators / full nodes
		validatorRouters map[p2p.RouterName]bool
	}{
		{"a validator's broadcast goes out on raintree and background", 1, map[p2p.RouterName]bool{p2p.RouterRainTree: true, p2p.RouterBackground: true}},
		// Submitted to a parent validator, which starts it on raintree.
		{"a full node's broadcast reaches validators through its parent", 5, map[p2p.RouterName]bool{p2p.RouterRainTree: true, p2p.RouterBackground: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := nodes[tt.origin].mod.Broadcast(ctx, wrapperspb.String(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 15*time.Second, "every node to receive", func() bool {
				for i, n := range nodes {
					if i != tt.origin && len(n.deliveries(env.GetNonce())) == 0 {
						return false
					}
				}
				return true
			}, func() string {
				var b strings.Builder
				for i, n := range nodes {
					fmt.Fprintf(&b, "node %d: %d copies, status %+v, stats %+v\n", i, len(n.deliveries(env.GetNonce())), n.mod.Status(), n.mod.Stats())
				}
				return b.String()
			})
			time.Sleep(300 * time.Millisecond) // let late copies from the other router arrive
			for i, n := range nodes {
				ds := n.deliveries(env.GetNonce())
				if i == tt.origin {
					if len(ds) != 0 {
						t.Errorf("origin received its own broadcast")
					}
					continue
				}
				if len(ds) != 1 {
					t.Fatalf("node %d received %d copies", i, len(ds))
				}
				if !ds[0].Broadcast || !tt.validatorRouters[ds[0].Router] && i < 4 {
					t.Errorf("node %d got it via %s (broadcast=%v)", i, ds[0].Router, ds[0].Broadcast)
				}
				if i >= 4 && ds[0].Router != p2p.RouterBackground {
					t.Errorf("full node %d got it via %s", i, ds[0].Router)
				}
				if ds[0].From != nodes[tt.origin].key.Address || ds[0].ID != wire.ComputeID("module-test", env) || ds[0].Relay == "" {
					t.Errorf("node %d: delivery names originator %s (want %s), ID %s, relay %q", i, ds[0].From, nodes[tt.origin].key.Address, ds[0].ID, ds[0].Relay)
				}
			}
		})
	}
}

func TestUnicastRoutingTable(t *testing.T) {
	nodes := network(t, 3, 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		from, to int
		want     p2p.RouterName
	}{
		{"validator to validator uses raintree", 0, 1, p2p.RouterRainTree},
		{"validator to full node uses background", 0, 3, p2p.RouterBackground},
		{"full node to validator uses background", 3, 2, p2p.RouterBackground},
		{"full node to full node uses background", 3, 4, p2p.RouterBackground},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			from, to := nodes[tt.from], nodes[tt.to]
			if got := from.mod.RouterFor(to.key.Address); got != tt.want {
				t.Fatalf("RouterFor = %s, want %s", got, tt.want)
			}
			// A full node learns other full nodes only through discovery,
			// which this test does not wait for: give it the address, as
			// an application that knows its peer would.
			from.host.Peerstore().AddAddrs(to.host.ID(), to.host.Addrs(), time.Minute)
			env, err := from.mod.Send(ctx, to.key.Address, wrapperspb.String(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the unicast", func() bool { return len(to.deliveries(env.GetNonce())) > 0 })
			d := to.deliveries(env.GetNonce())
			if len(d) != 1 || d[0].Router != tt.want || d[0].Broadcast || d[0].From != from.key.Address {
				t.Fatalf("delivery %+v", d)
			}
		})
	}
}

func TestBadInputGetsAClearError(t *testing.T) {
	nodes := network(t, 2, 1, nil)
	m := nodes[0].mod
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stranger, _ := identity.GenerateKey()
	cancelled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"sending to an unknown address", func() error {
			_, err := m.Send(ctx, stranger.Address, wrapperspb.String("x"))
			return err
		}, p2p.ErrUnknownPeer},
		{"an oversized broadcast", func() error {
			_, err := m.Broadcast(ctx, wrapperspb.Bytes(make([]byte, 5<<20)))
			return err
		}, wire.ErrTooLarge},
		{"an envelope without content", func() error {
			return m.BroadcastEnvelope(ctx, &wire.Envelope{Nonce: 1})
		}, wire.ErrNoContent},
		{"a cancelled context", func() error {
			_, err := m.Send(cancelled, nodes[2].key.Address, wrapperspb.String("x"))
			return err
		}, context.Canceled},
		{"an unsupported event", func() error { return m.HandleEvent(ctx, 42) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestALoneNodeCannotBroadcast(t *testing.T) {
	nodes := network(t, 1, 0, nil)
	_, err := nodes[0].mod.Broadcast(context.Background(), wrapperspb.String("anyone?"))
	if !errors.Is(err, p2p.ErrNoPeers) {
		t.Fatalf("got %v, want ErrNoPeers", err)
	}
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	k, _ := identity.GenerateKey()
	tests := []struct {
		name  string
		tweak func(*p2p.Config)
	}{
		{"no key", func(c *p2p.Config) { c.Key = nil }},
		{"no validator provider", func(c *p2p.Config) { c.Validators = nil }},
		{"no network id", func(c *p2p.Config) { c.NetworkID = "" }},
		{"a zero message size", func(c *p2p.Config) { c.MaxMessageSize = 0 }},
		{"a zero dedup capacity", func(c *p2p.Config) { c.DedupCapacity = 0 }},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			cfg := p2p.DefaultConfig()
			cfg.Key = k
			cfg.Validators = validators.StaticProvider{}
			tt.tweak(&cfg)
			if _, err := p2p.New(cfg); !errors.Is(err, p2p.ErrInvalidConfig) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestSendBeforeStartIsRefused(t *testing.T) {
	k, _ := identity.GenerateKey()
	cfg := p2p.DefaultConfig()
	cfg.Key = k
	cfg.Validators = validators.StaticProvider{}
	m, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Broadcast(context.Background(), wrapperspb.String("x")); !errors.Is(err, p2p.ErrNotStarted) {
		t.Fatalf("got %v", err)
	}
}

func TestJoiningTheValidatorSetStartsRainTree(t *testing.T) {
	nodes := network(t, 2, 1, nil)
	full := nodes[2]
	if full.mod.Role() != p2p.RoleFullNode {
		t.Fatalf("role %s", full.mod.Role())
	}
	var members []validators.Validator
	for _, n := range nodes {
		members = append(members, validators.Validator{PublicKey: n.key.Private.GetPublic(), Multiaddrs: n.host.Addrs()})
	}
	set, err := validators.NewSet(2, members)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.mod.HandleEvent(ctx, p2p.ValidatorSetChanged{Set: set}); err != nil {
			t.Fatal(err)
		}
	}
	if full.mod.Role() != p2p.RoleValidator || full.mod.RouterFor(nodes[0].key.Address) != p2p.RouterRainTree {
		t.Fatal("the new validator does not route over raintree")
	}
	env, err := nodes[0].mod.Send(ctx, full.key.Address, wrapperspb.String("welcome"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the unicast", func() bool { return len(full.deliveries(env.GetNonce())) == 1 })
	if d := full.deliveries(env.GetNonce()); d[0].Router != p2p.RouterRainTree {
		t.Fatalf("arrived via %s", d[0].Router)
	}
}

// Leaving the validator set closes the RainTree router, which waits for its
// read loops; one may be blocked handing a delivery to an application that
// is not reading. The update must not hang.
func TestLeavingTheSetDoesNotWaitForAnIdleReader(t *testing.T) {
	var keys []*identity.Key
	var members []validators.Validator
	var hosts []host.Host
	for range 3 {
		k, h, v := newHost(t)
		t.Cleanup(func() { h.Close() })
		keys, hosts, members = append(keys, k), append(hosts, h), append(members, v)
	}
	set, _ := validators.NewSet(1, members)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mods []*p2p.Module
	for i := range keys {
		cfg := p2p.DefaultConfig()
		cfg.NetworkID = "leave-test"
		cfg.Key, cfg.Host = keys[i], hosts[i]
		cfg.Validators = validators.StaticProvider{Set: set}
		cfg.DeliveryBuffer = 0 // nobody reads: the first delivery blocks
		m, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		mods = append(mods, m)
	}
	if _, err := mods[0].Send(ctx, keys[1].Address, wrapperspb.String("unread")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the delivery to block", func() bool {
		return mods[1].Stats().RainTree.UnicastReceived == 1
	})
	smaller, _ := validators.NewSet(2, []validators.Validator{members[0], members[2]})
	done := make(chan error, 1)
	go func() { done <- mods[1].UpdateValidators(smaller) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("UpdateValidators hung behind a blocked delivery")
	}
	if mods[1].Role() != p2p.RoleFullNode {
		t.Fatalf("role %s after leaving the set", mods[1].Role())
	}
	// The blocked delivery is not lost with its router: the message was
	// seen, so no other copy would bring it.
	select {
	case d := <-mods[1].Deliveries():
		var got wrapperspb.StringValue
		if err := d.Envelope.GetContent().UnmarshalTo(&got); err != nil || got.GetValue() != "unread" {
			t.Fatalf("delivered %v (%v), want the unread message", got.GetValue(), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delivery that waited when this node left the set was lost")
	}
}
