package p2p_test

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// stockPeer is go-libp2p-pubsub's gossipsub with only the settings
// docs/PROTOCOL.md asks of any implementation: no pubsub signature or
// author, the message ID, the size limit. Nothing of rainp2p runs in it
// but the envelope code that builds and checks what it publishes.
type stockPeer struct {
	key   *identity.Key
	host  host.Host
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func newStockPeer(t *testing.T, network string) *stockPeer {
	t.Helper()
	k, h, _ := newHost(t)
	t.Cleanup(func() { _ = h.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithNoAuthor(), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return wire.BackgroundMessageID(network, m.GetData()) }),
		pubsub.WithMaxMessageSize(wire.DefaultMaxMessageSize+64<<10))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(background.TopicName(network))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Cancel(); _ = topic.Close() })
	return &stockPeer{key: k, host: h, topic: topic, sub: sub}
}

// next returns the next valid envelope the stock peer receives.
func (s *stockPeer) next(t *testing.T, network string) *wire.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		msg, err := s.sub.Next(ctx)
		if err != nil {
			t.Fatalf("stock peer waiting for a broadcast: %v", err)
		}
		raw, err := wire.BackgroundEnvelope(msg.GetData(), 0)
		if err != nil {
			t.Fatalf("stock peer got a bad frame: %v", err)
		}
		m, err := wire.Open(network, raw, 0)
		if err != nil {
			t.Fatalf("stock peer got a bad envelope: %v", err)
		}
		return m
	}
}

// A stock gossipsub node that knows a single validator takes part as a
// full node: it gets every validator's broadcast, with lazy gossip too,
// where that validator is a leaf of only some broadcasts' trees, and its
// own broadcast reaches every validator.
func TestStockGossipSubFullNodeBehindOneValidator(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(map[bool]string{false: "eager", true: "lazy"}[lazy], func(t *testing.T) {
			stockFullNodeBehindOneValidator(t, func(c *p2p.Config) { c.Background.Gossip.LazyAmongValidators = lazy })
		})
	}
}

func stockFullNodeBehindOneValidator(t *testing.T, tweak func(*p2p.Config)) {
	const netID = "module-test"
	nodes := network(t, 9, 0, tweak)
	stock := newStockPeer(t, netID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	entry := nodes[0]
	if err := stock.host.Connect(ctx, peer.AddrInfo{ID: entry.host.ID(), Addrs: entry.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the validator to see the stock peer's subscription", func() bool {
		return entry.mod.Status().Peers[string(p2p.RouterBackground)] >= 1
	})
	for i, n := range nodes {
		env, err := n.mod.Broadcast(ctx, wrapperspb.String("from a validator"))
		if err != nil {
			t.Fatalf("validator %d: %v", i, err)
		}
		if got := stock.next(t, netID); got.Envelope.GetNonce() != env.GetNonce() {
			t.Fatalf("validator %d's broadcast: the stock peer got nonce %d, want %d", i, got.Envelope.GetNonce(), env.GetNonce())
		}
	}

	if got := len(stock.host.Network().Peers()); got != 1 {
		t.Fatalf("the stock peer has %d connections; the test needs it behind one validator", got)
	}
	env, err := wire.NewEnvelope(wrapperspb.String("from a stock peer"))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := wire.Seal(netID, env, stock.key.Private, identity.Address{}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := wire.EncodeBackground(msg.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := stock.topic.Publish(ctx, frame); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		waitFor(t, 20*time.Second, "a validator to deliver the stock peer's broadcast", func() bool {
			return len(n.deliveries(env.GetNonce())) == 1
		})
		if got := n.deliveries(env.GetNonce())[0].From; got != stock.key.Address {
			t.Errorf("validator %d: delivery from %s, want the stock peer %s", i, got, stock.key.Address)
		}
	}
}
