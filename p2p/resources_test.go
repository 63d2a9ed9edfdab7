package p2p_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/validators"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestResourceLimitsAreValidated(t *testing.T) {
	k, _ := identity.GenerateKey()
	set, _ := validators.NewSet(0, []validators.Validator{{PublicKey: k.Private.GetPublic()}})
	tests := []struct {
		name   string
		mutate func(*p2p.Config)
		fails  bool
	}{
		{"the defaults are valid", func(*p2p.Config) {}, false},
		{"a zero limit is refused", func(c *p2p.Config) { c.Resources.FD = 0 }, true},
		{"per-peer frame memory below two frames is refused", func(c *p2p.Config) { c.Resources.UnicastPeerMemory = 4 << 20 }, true},
		{"a larger message size needs more frame memory", func(c *p2p.Config) { c.MaxMessageSize = 32 << 20 }, true},
		{"per-peer memory below per-peer frame memory is refused", func(c *p2p.Config) { c.Resources.PeerMemory = 16 << 20 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p2p.DefaultConfig()
			cfg.Key, cfg.Validators = k, validators.StaticProvider{Set: set}
			tt.mutate(&cfg)
			if err := cfg.Validate(); (err != nil) != tt.fails {
				t.Fatalf("Validate = %v, want failure %v", err, tt.fails)
			}
		})
	}
}

// startOwned starts a Module that builds its own host on loopback.
func startOwned(t *testing.T, k *identity.Key, set *validators.Set, reg prometheus.Registerer) *p2p.Module {
	t.Helper()
	cfg := p2p.DefaultConfig()
	cfg.NetworkID = "resources-test"
	cfg.Key, cfg.Validators = k, validators.StaticProvider{Set: set}
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Background.DHT = false
	cfg.PrometheusRegisterer = reg
	cfg.Logger = slog.New(slog.DiscardHandler)
	m, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func TestTheAllowlistFollowsTheValidatorSet(t *testing.T) {
	self, _ := identity.GenerateKey()
	var members []validators.Validator
	members = append(members, validators.Validator{PublicKey: self.Private.GetPublic()})
	for i := range 3 {
		k, _ := identity.GenerateKey()
		addrs := []ma.Multiaddr{ma.StringCast("/ip4/10.1.0." + string(rune('1'+i)) + "/tcp/4001"), ma.StringCast("/ip4/10.1.0.9/tcp/" + string(rune('1'+i)) + "001")} // no QUIC: see newHost
		members = append(members, validators.Validator{PublicKey: k.Private.GetPublic(), Multiaddrs: addrs})
	}
	set, err := validators.NewSet(1, members)
	if err != nil {
		t.Fatal(err)
	}
	m := startOwned(t, self, set, prometheus.NewRegistry())
	if got := m.Stats().Resources.Allowlisted; got != 6 {
		t.Fatalf("allowlisted %d multiaddrs, want 6 (3 validators x 2, not self)", got)
	}
	smaller, err := validators.NewSet(2, members[:2])
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UpdateValidators(smaller); err != nil {
		t.Fatal(err)
	}
	if got := m.Stats().Resources.Allowlisted; got != 2 {
		t.Fatalf("after the set shrank, allowlisted %d, want 2", got)
	}
}

func TestResourceFiguresAreExported(t *testing.T) {
	self, _ := identity.GenerateKey()
	set, err := validators.NewSet(1, []validators.Validator{{PublicKey: self.Private.GetPublic()}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry() // every metric collected is described
	m := startOwned(t, self, set, reg)
	if err := reg.Register(p2p.NewCollector(m)); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
	}
	for _, want := range []string{
		"rainp2p_resource_memory_bytes", "rainp2p_resource_blocked_total", "rainp2p_resource_allowlisted_addrs",
		"rainp2p_penalties_total", "rainp2p_gossip_graylisted_peers", "rainp2p_connmgr_conns", "rainp2p_lazy_gossip_total", "rainp2p_forward_delay_seconds", "rainp2p_records_forgotten_total", "rainp2p_discovery_errors_total",
	} {
		if !have[want] {
			t.Errorf("%s missing from /metrics", want)
		}
	}
	libp2p := 0
	for name := range have {
		if strings.HasPrefix(name, "libp2p_rcmgr_") {
			libp2p++
		}
	}
	if libp2p == 0 {
		t.Error("no libp2p_rcmgr_* figures: the resource manager's own metrics are not on our registry")
	}
}

// A peer outside the validator set may send a frame of the largest size
// the module takes. Its reservations are low priority, which the
// resource manager grants only up to about 40% of a limit, and the
// stream's limit used to hold the two frames at full priority only: a
// full node's block of 3.5 MiB was refused for memory.
func TestAFullNodesLargestFrameFitsItsStreamsMemory(t *testing.T) {
	const net = "frame-memory"
	maxFrame := p2p.DefaultConfig().MaxMessageSize + wire.FrameOverhead
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(p2p.ResourceLimits(p2p.DefaultResources(), net, maxFrame)))
	if err != nil {
		t.Fatal(err)
	}
	receiver, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.ResourceManager(rm), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = receiver.Close() })
	sender, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	ucfg := unicast.DefaultConfig(background.UnicastProtocolID(net))
	ucfg.MaxMessageSize = maxFrame
	got := make(chan int, 1)
	in, err := unicast.New(receiver, ucfg, func(_ peer.ID, b []byte) { got <- len(b) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	out, err := unicast.New(sender, ucfg, func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sender.Connect(ctx, peer.AddrInfo{ID: receiver.ID(), Addrs: receiver.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := out.Send(ctx, receiver.ID(), make([]byte, maxFrame)); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-got:
		if n != maxFrame {
			t.Fatalf("got a frame of %d bytes, want %d", n, maxFrame)
		}
	case <-ctx.Done():
		t.Fatalf("the frame never arrived: %+v", in.Stats())
	}
	if s := in.Stats(); s.DroppedNoMemory != 0 {
		t.Fatalf("%d frames dropped for memory", s.DroppedNoMemory)
	}
}
