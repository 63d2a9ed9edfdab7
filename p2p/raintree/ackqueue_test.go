package raintree

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Attack: a hostile validator sends a validator frame after frame (the
// same one: each is acknowledged) and never reads the ACKs, so they pile
// up on a stream it has stopped. Its ACKs wait in a queue of their own, at
// most ACKQueuePerPeer, the rest dropped and counted; an honest
// validator's frame sent meanwhile is acknowledged in time.
func TestAValidatorThatReadsNoACKsHoldsUpOnlyItsOwn(t *testing.T) {
	const victim, honest, hostile = 1, 0, 2
	c := newTCPCluster(t, 4, func(cfg *Config) { cfg.ACKTimeout = 10 * time.Second }) // room for a loaded machine
	v, w, h := c.nodes[victim], c.nodes[honest], c.nodes[hostile]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, nd := range c.nodes[1:] { // connected: the honest one skips no target
		if err := w.host.Connect(ctx, peer.AddrInfo{ID: nd.host.ID(), Addrs: nd.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	_ = h.router.Close()
	h.host.SetStreamHandler(ACKProtocolID(testNetwork), func(network.Stream) {}) // open, never read
	ucfg := unicast.DefaultConfig(ProtocolID(testNetwork))
	ucfg.MaxMessageSize = 1 << 20
	uni, err := unicast.New(h.host, ucfg, func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = uni.Close() })

	msg, id := newEnvelope(t, h.key, "again and again")
	frame, err := proto.Marshal(&wire.RainTreeMessage{
		Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Level: 1, Data: msg.Raw, MessageId: id[:],
		SetHeight: c.set.Height(), SetHash: c.set.Hash(), Mode: string(ModeCover), SpanStart: victim, SpanLen: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Enough ACKs to fill the hostile validator's stream window, and then
	// the queue.
	for v.router.Stats().Dropped.ACKQueueFull == 0 {
		for range 256 {
			if err := uni.Send(ctx, v.host.ID(), frame); err != nil {
				t.Fatal(err)
			}
		}
		if ctx.Err() != nil {
			t.Fatal("the victim never dropped an ACK to the validator that reads none")
		}
	}
	before := w.router.Stats()
	honestMsg, _ := newEnvelope(t, w.key, "honest")
	if err := w.router.Broadcast(ctx, honestMsg); err != nil {
		t.Fatal(err)
	}
	// The victim's ACK and the fourth validator's, in time; the hostile
	// one, whose router is closed, sends none.
	eventually(t, 10*time.Second, func() bool { return w.router.Stats().AcksReceived == before.AcksReceived+2 },
		"the honest validator's ACKs: %+v", w.router.Stats())
}
