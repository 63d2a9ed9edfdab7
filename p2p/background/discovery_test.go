package background

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A hub and members that each know only the hub; a late node is handed the
// hub through AddBootstrapPeers. Through the DHT the late node finds and
// connects to the members it was never told about, and gets their
// broadcasts.
func TestOneBootstrapAddressFindsTheRest(t *testing.T) {
	cfg := testConfig("discovery")
	cfg.DHT = true
	hub := startNode(t, cfg)

	const members = 4
	memberCfg := cfg
	memberCfg.BootstrapPeers = []peer.AddrInfo{addrInfo(hub.h)}
	var nodes []*node
	for range members {
		nodes = append(nodes, startNode(t, memberCfg))
	}
	late := startNode(t, cfg)
	late.r.AddBootstrapPeers([]peer.AddrInfo{addrInfo(hub.h)})
	all := append([]*node{hub, late}, nodes...)
	total := len(all)

	for i, nd := range all {
		eventually(t, 20*time.Second, fmt.Sprintf("node %d to find %d topic peers", i, total-2), func() bool {
			return len(nd.r.TopicPeers()) >= total-2
		})
	}
	// The routing table fills as DHT queries complete, a little after
	// topic peers are found.
	eventually(t, 20*time.Second, fmt.Sprintf("late node's routing table to hold %d peers", total-2), func() bool {
		return late.r.dht.RoutingTable().Size() >= total-2
	})
	direct := 0
	for _, nd := range nodes {
		if late.h.Network().Connectedness(nd.h.ID()) == network.Connected {
			direct++
		}
	}
	if direct == 0 {
		t.Errorf("late node connected to no member it was not told about")
	}

	env := envelope(t, nodes[0], "from a stranger")
	if err := nodes[0].r.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	for i, nd := range all {
		if nd == nodes[0] {
			continue
		}
		eventually(t, 10*time.Second, fmt.Sprintf("node %d to receive", i), func() bool { return len(nd.in.deliveries(env)) == 1 })
	}
}

// Bootstrap dialing keeps retrying in the background: Start does not wait
// for it, and a bootstrap peer that comes up later is still reached.
func TestBootstrapDialRetriesUntilThePeerIsUp(t *testing.T) {
	cfg := testConfig("retry")
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	hubHost := newHost(t, libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	hubInfo := addrInfo(hubHost)
	// Take the hub down; its address stays valid for a moment.
	if err := hubHost.Close(); err != nil {
		t.Fatal(err)
	}
	nodeCfg := cfg
	nodeCfg.BootstrapPeers = []peer.AddrInfo{hubInfo}
	start := time.Now()
	n := startNode(t, nodeCfg)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Start blocked for %v on an unreachable bootstrap peer", d)
	}
	eventually(t, 10*time.Second, "a few failed attempts, counted", func() bool { return n.r.Stats().BootstrapDialErrors >= 2 })

	// Bring up a node under the same identity and address.
	hub := startNodeOn(t, newHost(t, libp2p.Identity(key), libp2p.ListenAddrs(hubInfo.Addrs...)), cfg)
	eventually(t, 20*time.Second, "the redial to reach the hub", func() bool {
		return n.h.Network().Connectedness(hub.h.ID()) == network.Connected
	})
}

// SetValidatorPeers replaces the validator peers: a peer left out of a
// later call stops being protected and redialled, while remaining
// validators stay protected and configured bootstrap peers stay, tagged.
func TestSetValidatorPeersDropsFormerValidators(t *testing.T) {
	cfg := testConfig("validators")
	a := startNode(t, cfg)
	c := startNode(t, cfg)
	// b is offline, so its dialer keeps retrying until dropped.
	bHost := newHost(t)
	b := addrInfo(bHost)
	if err := bHost.Close(); err != nil {
		t.Fatal(err)
	}

	nodeCfg := cfg
	nodeCfg.BootstrapPeers = []peer.AddrInfo{addrInfo(c.h)}
	n := startNode(t, nodeCfg)
	cm := n.h.ConnManager()

	n.r.SetValidatorPeers([]peer.AddrInfo{addrInfo(a.h), b, addrInfo(c.h)})
	for _, id := range []peer.ID{a.h.ID(), b.ID, c.h.ID()} {
		if !cm.IsProtected(id, protectTag) {
			t.Fatalf("validator %s not protected", id)
		}
	}
	eventually(t, 10*time.Second, "a and c to connect", func() bool {
		return n.h.Network().Connectedness(a.h.ID()) == network.Connected &&
			n.h.Network().Connectedness(c.h.ID()) == network.Connected
	})
	eventually(t, 10*time.Second, "only b's dialer to remain", func() bool { return n.r.dialers.Load() == 1 })

	n.r.SetValidatorPeers([]peer.AddrInfo{addrInfo(a.h)})
	if cm.IsProtected(b.ID, protectTag) {
		t.Error("former validator b still protected")
	}
	if !cm.IsProtected(a.h.ID(), protectTag) {
		t.Error("validator a no longer protected")
	}
	if cm.IsProtected(c.h.ID(), protectTag) {
		t.Error("configured bootstrap peer c still protected after leaving the validator peers")
	}
	if ti := cm.GetTagInfo(c.h.ID()); ti == nil || ti.Tags[bootstrapTag] != bootstrapWeight {
		t.Errorf("configured bootstrap peer c: tags %+v, want %s=%d", ti, bootstrapTag, bootstrapWeight)
	}
	eventually(t, 5*time.Second, "b's dialer to stop", func() bool { return n.r.dialers.Load() == 0 })
	n.r.mu.Lock()
	_, bKept := n.r.bootstrap[b.ID]
	_, aKept := n.r.bootstrap[a.h.ID()]
	_, cKept := n.r.bootstrap[c.h.ID()]
	n.r.mu.Unlock()
	if bKept || !aKept || !cKept {
		t.Errorf("bootstrap set: a %v, b %v, c %v; want a and c only", aKept, bKept, cKept)
	}

	// a going offline is still redialled; b would not be.
	if err := n.h.Network().ClosePeer(a.h.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a to be redialled", func() bool {
		return n.h.Network().Connectedness(a.h.ID()) == network.Connected
	})
	time.Sleep(2 * cfg.AdvertiseInterval) // maintain rounds run
	n.r.mu.Lock()
	bDialing := n.r.dialing[b.ID] != nil
	n.r.mu.Unlock()
	if bDialing {
		t.Error("former validator b redialled")
	}
}
