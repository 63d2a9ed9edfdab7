package p2p_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

const attackNetwork = "attack-test"

// arena is a victim validator whose Module builds its own host (so it runs
// the shipped resource manager, allowlist and penalties) and honest
// validators on hosts of their own.
type arena struct {
	victim *node
	honest []*node
	all    []*node
}

// newArena starts the honest validators listening on honestAddrs (one
// each) and the victim on victimAddr, all in one validator set; insiders
// are validators of the set that run no Module (attackers).
func newArena(t *testing.T, victimAddr string, honestAddrs []string, tweak func(*p2p.Config), insiders ...*identity.Key) *arena {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	a := &arena{}
	vk, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a.victim = &node{key: vk, got: map[uint64][]p2p.Delivery{}, done: make(chan struct{})}
	members := []validators.Validator{{PublicKey: vk.Private.GetPublic()}}
	for _, addr := range honestAddrs {
		k, _ := identity.GenerateKey()
		h, err := libp2p.New(append(dialFrom(addr), libp2p.Identity(k.Private), libp2p.ListenAddrStrings(addr))...)
		if err != nil {
			t.Fatal(err)
		}
		n := &node{key: k, host: h, got: map[uint64][]p2p.Delivery{}, done: make(chan struct{})}
		a.honest = append(a.honest, n)
		members = append(members, validators.Validator{PublicKey: k.Private.GetPublic(), Multiaddrs: h.Addrs()})
	}
	for _, k := range insiders {
		members = append(members, validators.Validator{PublicKey: k.Private.GetPublic()})
	}
	set, err := validators.NewSet(1, members)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func(n *node, cfg p2p.Config) {
		cfg.NetworkID = attackNetwork
		cfg.Key = n.key
		cfg.Validators = validators.StaticProvider{Set: set}
		cfg.Height = 1
		cfg.Background.DHT = false
		cfg.Logger = quiet
		m, err := p2p.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(ctx); err != nil {
			t.Fatal(err)
		}
		n.mod = m
		if n.host == nil {
			n.host = m.Host()
		}
		go n.collect(m)
	}
	for _, n := range a.honest {
		cfg := p2p.DefaultConfig()
		cfg.Host = n.host
		start(n, cfg)
	}
	cfg := p2p.DefaultConfig()
	cfg.ListenAddrs = []string{victimAddr}
	if tweak != nil {
		tweak(&cfg)
	}
	start(a.victim, cfg)
	a.all = append([]*node{a.victim}, a.honest...)
	t.Cleanup(func() {
		for _, n := range a.all {
			_ = n.mod.Close()
			<-n.done
			_ = n.host.Close()
		}
	})

	// Now that the victim's addresses are known, every node learns them.
	members[0].Multiaddrs = a.victim.host.Addrs()
	if set, err = validators.NewSet(2, members); err != nil {
		t.Fatal(err)
	}
	for _, n := range a.all {
		if err := n.mod.UpdateValidators(set); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range a.honest {
		// The routers dial each other as soon as they know the set, and a
		// TCP simultaneous open on loopback can fail one handshake (both
		// sides the TLS client); the next attempt then succeeds.
		var err error
		waitFor(t, 20*time.Second, "an honest node connected to the victim", func() bool {
			err = n.host.Connect(ctx, peer.AddrInfo{ID: a.victim.host.ID(), Addrs: a.victim.host.Addrs()})
			return err == nil
		}, func() string { return fmt.Sprintf("last dial error: %v", err) })
	}
	waitFor(t, 20*time.Second, "the victim in the gossip mesh", func() bool {
		return a.victim.mod.Status().Peers["background"] >= len(a.honest)
	})
	return a
}

// honestDelivery broadcasts n envelopes from the first honest validator
// and returns the fraction of (envelope, other node) pairs delivered
// exactly once within the wait.
func (a *arena) honestDelivery(t *testing.T, n int, tag string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	origin := a.honest[0]
	var nonces []uint64
	for i := range n {
		env, err := origin.mod.Broadcast(ctx, wrapperspb.String(fmt.Sprintf("%s %d", tag, i)))
		if err != nil {
			t.Fatalf("honest broadcast %d: %v", i, err)
		}
		nonces = append(nonces, env.GetNonce())
	}
	delivered := func() int {
		got := 0
		for _, node := range a.all {
			if node == origin {
				continue
			}
			for _, nonce := range nonces {
				if len(node.deliveries(nonce)) == 1 {
					got++
				}
			}
		}
		return got
	}
	want := n * (len(a.all) - 1)
	deadline := time.Now().Add(20 * time.Second)
	for delivered() < want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return float64(delivered()) / float64(want)
}

// dialFrom makes a host's TCP dials leave from the IP of listen, as a
// machine with one address does, instead of whichever source address the
// kernel picks (in a test namespace where a whole subnet is local, that
// would be the destination's own). Loopback needs nothing.
func dialFrom(listen string) []libp2p.Option {
	addr, err := ma.NewMultiaddr(listen)
	if err != nil {
		return nil
	}
	ip, err := manet.ToIP(addr)
	if err != nil || ip.IsLoopback() {
		return nil
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	return []libp2p.Option{
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return d, nil })),
	}
}

// attacker is a bare libp2p host speaking our protocols by hand. Off
// loopback it does not listen, and dials from listen's address.
func attacker(t *testing.T, listen string) host.Host {
	t.Helper()
	return attackerWithKey(t, listen, nil)
}

// attackerWithKey is attacker with the identity of key (nil: a new one).
func attackerWithKey(t *testing.T, listen string, key *identity.Key) host.Host {
	t.Helper()
	opts := dialFrom(listen)
	if key != nil {
		opts = append(opts, libp2p.Identity(key.Private))
	}
	if opts == nil {
		opts = []libp2p.Option{libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings(listen)}
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	h, err := libp2p.New(append(opts,
		libp2p.DisableRelay(), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&lpnet.NullResourceManager{}),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Under a declare-and-stall attack from 4 peer IDs (12 streams each on
// both unicast protocols, every frame declared at the maximum and left one
// byte short), the victim holds at most 256 MiB for unfinished frames,
// releases it within 30 s of the attackers leaving, and honest broadcasts
// are all delivered throughout. Attackers that are validators may use the
// full per-peer limits (4 x 64 MiB); others only 40% of them.
func TestDeclareAndStallFromFourPeersIsBoundedAndReleased(t *testing.T) {
	for _, tt := range []struct {
		name       string
		validators bool
	}{
		{"four outsiders", false},
		{"four validators", true},
	} {
		t.Run(tt.name, func(t *testing.T) { declareAndStall(t, tt.validators) })
	}
}

func declareAndStall(t *testing.T, asValidators bool) {
	const (
		peers          = 4
		streamsPerPeer = 24
		limit          = 256 << 20
	)
	keys := make([]*identity.Key, peers)
	for i := range keys {
		keys[i], _ = identity.GenerateKey()
	}
	var insiders []*identity.Key
	if asValidators {
		insiders = keys
	}
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0"}, nil, insiders...)
	victim := a.victim
	maxFrame := p2p.DefaultConfig().MaxMessageSize + wire.FrameOverhead
	protocols := []string{string(raintree.ProtocolID(attackNetwork)), string(background.UnicastProtocolID(attackNetwork))}

	var peak atomic.Int64
	sample := func() int64 {
		m := victim.mod.Stats().Resources.UnicastMemory
		for p := peak.Load(); m > p && !peak.CompareAndSwap(p, m); p = peak.Load() {
		}
		return m
	}
	// Honest streams keep a small read buffer (up to 64 KiB) reserved
	// between frames; that is the baseline the victim returns to.
	if r := a.honestDelivery(t, 5, "warm-up"); r != 1 {
		t.Fatalf("honest delivery before the attack %.3f", r)
	}
	baseline := sample()
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
				sample()
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var attackers []host.Host
	var wg sync.WaitGroup
	var sentMu sync.Mutex
	sent := 0
	for _, k := range keys {
		h := attackerWithKey(t, "/ip4/127.0.0.1/tcp/0", k)
		attackers = append(attackers, h)
		if err := h.Connect(ctx, peer.AddrInfo{ID: victim.host.ID(), Addrs: victim.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
		for i := range streamsPerPeer {
			wg.Go(func() {
				s, err := h.NewStream(ctx, victim.host.ID(), protocolID(protocols[i%2]))
				if err != nil {
					return // refused by the victim's limits
				}
				chunk := make([]byte, 64<<10)
				if _, err := s.Write(binary.AppendUvarint(nil, uint64(maxFrame))); err != nil {
					return
				}
				for left := maxFrame - 1; left > 0; {
					n, err := s.Write(chunk[:min(len(chunk), left)])
					left -= n
					sentMu.Lock()
					sent += n
					sentMu.Unlock()
					if err != nil {
						return // the victim reset the stream
					}
				}
				// Stall with the last byte unsent, until the attacker leaves.
			})
		}
	}

	// Honest traffic during the attack.
	during := a.honestDelivery(t, 20, "during")
	wg.Wait()
	held := sample()
	t.Logf("attack: %d MiB sent by the attackers, victim holds %d MiB for unfinished frames (peak %d MiB)",
		sent>>20, held>>20, peak.Load()>>20)

	// The attackers leave.
	left := time.Now()
	for _, h := range attackers {
		_ = h.Close()
	}
	waitFor(t, 30*time.Second, "the victim to release the frames' memory", func() bool { return sample() <= baseline+256<<10 }, func() string {
		conns := 0
		for _, h := range attackers {
			conns += len(victim.host.Network().ConnsToPeer(h.ID()))
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		return fmt.Sprintf("victim conns to attackers %d, stats %+v\n%s", conns, victim.mod.Stats().Resources, buf[:n])
	})
	released := time.Since(left)
	close(stopSampling)
	<-sampled
	after := a.honestDelivery(t, 20, "after")

	st := victim.mod.Stats()
	t.Logf("baseline %d KiB, peak %d MiB (limit %d MiB), released to baseline %v after the attackers left, honest delivery %.2f during and %.2f after; "+
		"no-memory resets %d+%d, rcmgr memory refusals %d",
		baseline>>10, peak.Load()>>20, limit>>20, released.Round(time.Millisecond), during, after,
		st.RainTreeUnicast.DroppedNoMemory, st.Background.Unicast.DroppedNoMemory, st.Resources.BlockedMemory)
	if peak.Load() == 0 {
		t.Fatal("the attack never reached the victim's frame memory")
	}
	if peak.Load() > limit {
		t.Errorf("peak frame memory %d MiB over %d MiB", peak.Load()>>20, limit>>20)
	}
	if during != 1 || after != 1 {
		t.Errorf("honest delivery ratio %.3f during, %.3f after; want 1", during, after)
	}
	if st.RainTreeUnicast.DroppedNoMemory+st.Background.Unicast.DroppedNoMemory == 0 {
		t.Error("no frame was refused memory: the attack stayed under the limits and proves nothing")
	}
}

// Malformed frames on either unicast protocol reset their stream and, from
// the third one, close the offender's connection; so do well-framed
// payloads the router cannot use. Honest delivery goes on.
func TestGarbageFramesOnTheUnicastProtocolsEndInDisconnection(t *testing.T) {
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0"}, nil)
	victim := a.victim
	garbage := []struct {
		name  string
		bytes []byte
	}{
		{"an empty frame", binary.AppendUvarint(nil, 0)},
		{"a length far over the limit", binary.AppendUvarint(nil, 1<<40)},
		{"a length prefix that is no uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	framed := []string{string(raintree.ProtocolID(attackNetwork)), string(raintree.ACKProtocolID(attackNetwork)), string(background.UnicastProtocolID(attackNetwork))}
	for _, proto := range framed {
		t.Run(proto, func(t *testing.T) {
			h := attacker(t, "/ip4/127.0.0.1/tcp/0")
			defer h.Close()
			if err := h.Connect(ctx, peer.AddrInfo{ID: victim.host.ID(), Addrs: victim.host.Addrs()}); err != nil {
				t.Fatal(err)
			}
			for _, g := range garbage {
				s, err := h.NewStream(ctx, victim.host.ID(), protocolID(proto))
				if err != nil {
					t.Fatalf("%s: %v", g.name, err)
				}
				_, _ = s.Write(g.bytes)
				_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.ReadAll(s); err == nil {
					t.Fatalf("%s: the victim did not reset the stream", g.name)
				}
			}
			waitFor(t, 10*time.Second, "the victim to disconnect the attacker", func() bool {
				return victim.host.Network().Connectedness(h.ID()) != lpnet.Connected
			})
		})
	}
	// Well-framed payloads that are not messages: the router judges them
	// and strikes the sender through its unicast (Penalize).
	for _, proto := range []string{string(raintree.ProtocolID(attackNetwork)), string(background.UnicastProtocolID(attackNetwork))} {
		t.Run(proto+" payload", func(t *testing.T) {
			h := attacker(t, "/ip4/127.0.0.1/tcp/0")
			defer h.Close()
			if err := h.Connect(ctx, peer.AddrInfo{ID: victim.host.ID(), Addrs: victim.host.Addrs()}); err != nil {
				t.Fatal(err)
			}
			s, err := h.NewStream(ctx, victim.host.ID(), protocolID(proto))
			if err != nil {
				t.Fatal(err)
			}
			junk := []byte{0xff, 0xff, 0xff, 0x01, 0x02}
			for range 3 {
				if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(junk))), junk...)); err != nil {
					break // already disconnected
				}
			}
			waitFor(t, 10*time.Second, "the victim to disconnect the attacker", func() bool {
				return victim.host.Network().Connectedness(h.ID()) != lpnet.Connected
			})
		})
	}
	st := victim.mod.Stats()
	if st.RainTreeACKUnicast.PeersDisconnected != 1 {
		t.Errorf("ACK protocol disconnects %d, want 1", st.RainTreeACKUnicast.PeersDisconnected)
	}
	if st.RainTreeUnicast.PeersDisconnected != 2 || st.Background.Unicast.PeersDisconnected != 2 {
		t.Fatalf("disconnects: raintree %d, background %d; want 2 each", st.RainTreeUnicast.PeersDisconnected, st.Background.Unicast.PeersDisconnected)
	}
	if st.RainTreeUnicast.Penalized == 0 || st.Background.Unicast.Penalized == 0 {
		t.Fatalf("penalized: raintree %d, background %d; want both > 0", st.RainTreeUnicast.Penalized, st.Background.Unicast.Penalized)
	}
	if r := a.honestDelivery(t, 10, "after garbage"); r != 1 {
		t.Fatalf("honest delivery ratio %.3f, want 1", r)
	}
}

func protocolID(s string) protocol.ID { return protocol.ID(s) }
