package background

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newHost starts a TCP-only host on loopback, closed at test cleanup.
func newHost(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	if len(opts) == 0 {
		opts = []libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}
	}
	h, err := libp2p.New(append(opts,
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func addrInfo(h host.Host) peer.AddrInfo {
	return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, addrInfo(b)); err != nil {
		t.Fatalf("connecting %s to %s: %v", a.ID(), b.ID(), err)
	}
}

// testConfig is DefaultConfig with intervals short enough for tests and
// without the DHT; discovery tests turn it back on.
func testConfig(network string) Config {
	c := DefaultConfig(network)
	c.Gossip.HeartbeatInterval = 100 * time.Millisecond
	c.Gossip.MaxForwardDelay = 200 * time.Millisecond // below 3 heartbeats
	c.Gossip.LargeForwardDelay = 200 * time.Millisecond
	c.AdvertiseInterval = 300 * time.Millisecond
	c.MaxMessageSize = 64 << 10
	c.DHT = false
	c.Logger = slog.New(slog.DiscardHandler)
	return c
}

type delivery struct {
	from      peer.ID // the relay
	origin    identity.Address
	via       Via
	wantProof bool // a submission asked for a proof
}

// inbox records what a node's handler received.
type inbox struct {
	mu  sync.Mutex
	got map[string][]delivery
}

func (b *inbox) handle(from peer.ID, msg *wire.Message, via Via, h wire.Handover) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.got == nil {
		b.got = make(map[string][]delivery)
	}
	b.got[string(msg.ID[:])] = append(b.got[string(msg.ID[:])], delivery{from, msg.Origin, via, h.WantProof})
}

func (b *inbox) deliveries(msg *wire.Message) []delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]delivery(nil), b.got[string(msg.ID[:])]...)
}

func (b *inbox) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, d := range b.got {
		n += len(d)
	}
	return n
}

type node struct {
	h  host.Host
	r  *Router
	in *inbox
}

// startNode builds and starts a Router on a fresh host; both close at
// cleanup, the Router first.
func startNode(t testing.TB, cfg Config) *node {
	t.Helper()
	return startNodeOn(t, newHost(t), cfg)
}

func startNodeOn(t testing.TB, h host.Host, cfg Config) *node {
	t.Helper()
	n := &node{h: h, in: &inbox{}}
	r, err := New(n.h, cfg, n.in.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("closing router: %v", err)
		}
	})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.r = r
	return n
}

func waitReady(t testing.TB, n *node, peers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.r.WaitReady(ctx, peers); err != nil {
		t.Fatalf("node %s: %v", n.h.ID(), err)
	}
}

// envelope is a message signed by n's host key on n's network.
func envelope(t testing.TB, n *node, payload string) *wire.Message {
	t.Helper()
	return signed(t, n.h.Peerstore().PrivKey(n.h.ID()), n.r.cfg.NetworkID, payload)
}

func signed(t testing.TB, key crypto.PrivKey, network, payload string) *wire.Message {
	t.Helper()
	e, err := wire.NewEnvelope(wrapperspb.String(payload))
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Seal(network, e, key, identity.Address{}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// direct is a unicast message from n to the node at address to.
func direct(t testing.TB, n *node, to identity.Address, payload string) *wire.Message {
	t.Helper()
	e, err := wire.NewEnvelope(wrapperspb.String(payload))
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Seal(n.r.cfg.NetworkID, e, n.h.Peerstore().PrivKey(n.h.ID()), to, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// addr is the address of a node's host key.
func addr(t testing.TB, n *node) identity.Address {
	t.Helper()
	a, err := identity.AddressFromPeerID(n.h.ID())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
