package p2p_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// A node listening on 0.0.0.0 advertises only its announce addresses, and
// peers learn them through identify.
func TestAnnounceAddrsReplaceTheListenAddresses(t *testing.T) {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	set, err := validators.NewSet(1, []validators.Validator{{PublicKey: k.Private.GetPublic()}})
	if err != nil {
		t.Fatal(err)
	}
	const announced = "/ip4/198.51.100.7/tcp/4001"
	cfg := p2p.DefaultConfig()
	cfg.Key = k
	cfg.Validators = validators.StaticProvider{Set: set}
	cfg.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"}
	cfg.AnnounceAddrs = []string{announced}
	m, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Status().ListenAddrs; !slices.Equal(got, []string{announced}) {
		t.Fatalf("advertised %v, want only %s", got, announced)
	}

	other, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var dial []ma.Multiaddr
	for _, a := range m.Host().Network().ListenAddresses() {
		if port, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			dial = append(dial, ma.StringCast("/ip4/127.0.0.1/tcp/"+port))
		}
	}
	if err := other.Connect(ctx, peer.AddrInfo{ID: k.PeerID, Addrs: dial}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "identify to report the announced address", func() bool {
		return slices.ContainsFunc(other.Peerstore().Addrs(k.PeerID), func(a ma.Multiaddr) bool { return a.String() == announced })
	})
}

func TestBadAnnounceAddrsAreRefused(t *testing.T) {
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"not-a-multiaddr", "/ip4/198.51.100.7/tcp/4001/p2p/" + k.PeerID.String()} {
		cfg := p2p.DefaultConfig()
		cfg.Key = k
		cfg.Validators = validators.StaticProvider{}
		cfg.AnnounceAddrs = []string{bad}
		if err := cfg.Validate(); !errors.Is(err, p2p.ErrInvalidConfig) {
			t.Errorf("announce %q: got %v, want ErrInvalidConfig", bad, err)
		}
	}
}
