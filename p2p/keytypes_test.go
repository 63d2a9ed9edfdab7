package p2p_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/validators"
)

// A full node whose key is not ed25519 (here ECDSA, whose peer ID is a hash
// that does not embed the key) takes part under its documented address:
// validators see its broadcasts from that address and can send to it.
func TestAFullNodeWithAnotherKeyTypeHasItsDocumentedAddress(t *testing.T) {
	nodes := network(t, 2, 0, nil)
	priv, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.KeyFromPrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	want, err := identity.AddressFromPublicKey(priv.GetPublic())
	if err != nil || want.IsZero() || k.Address != want {
		t.Fatalf("address %s (key says %s): %v", want, k.Address, err)
	}
	h, err := libp2p.New(libp2p.Identity(priv), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cfg := p2p.DefaultConfig()
	cfg.NetworkID = "module-test"
	cfg.Key, cfg.Host = k, h
	cfg.Validators = validators.StaticProvider{Set: nodes[0].mod.ValidatorSet()}
	cfg.Height = 1
	cfg.Background.AdvertiseInterval = time.Second
	cfg.Background.BootstrapPeers = []peer.AddrInfo{{ID: nodes[0].host.ID(), Addrs: nodes[0].host.Addrs()}}
	full, err := p2p.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := full.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	waitFor(t, 20*time.Second, "the full node to join the topic", func() bool {
		return full.Status().Peers["background"] >= 1 && nodes[0].mod.Status().Peers["background"] >= 2
	})

	env, err := full.Broadcast(ctx, wrapperspb.String("from an ECDSA key"))
	if err != nil {
		t.Fatal(err)
	}
	// The envelope carries the originator's key, so every validator names
	// the sender by its documented address, even one that got it relayed
	// and never saw the ECDSA key in a handshake (its peer ID is a hash).
	for i, n := range nodes {
		waitFor(t, 15*time.Second, "the validator to receive", func() bool { return len(n.deliveries(env.GetNonce())) > 0 })
		if d := n.deliveries(env.GetNonce())[0]; d.From != want {
			t.Fatalf("validator %d saw the broadcast from %s, want %s", i, d.From, want)
		}
	}

	// nodes[0] is the full node's bootstrap peer, so it is connected to it
	// and knows its key; nodes[1] may not have met it yet.
	if _, err := nodes[0].mod.Send(ctx, want, wrapperspb.String("to an ECDSA key")); err != nil {
		t.Fatalf("sending to the full node by its address: %v", err)
	}
	select {
	case d := <-full.Deliveries():
		if d.From != nodes[0].key.Address {
			t.Fatalf("unicast from %s, want %s", d.From, nodes[0].key.Address)
		}
	case <-ctx.Done():
		t.Fatal("the full node got no unicast")
	}
}
