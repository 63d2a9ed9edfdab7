package p2p_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Attacks on message identity, from separate libp2p hosts on loopback that
// speak the protocols directly (docs/PROTOCOL.md).

// gossiper joins the arena's topic as a stock gossipsub node configured
// as docs/PROTOCOL.md says, with no validator: it publishes whatever it is
// given.
func gossiper(t *testing.T, a *arena) (host.Host, *pubsub.Topic) {
	t.Helper()
	h := attacker(t, "/ip4/127.0.0.1/tcp/0")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithNoAuthor(), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return wire.BackgroundMessageID(attackNetwork, m.GetData()) }),
		pubsub.WithFloodPublish(true), pubsub.WithMaxMessageSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(background.TopicName(attackNetwork))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range a.all {
		if err := h.Connect(ctx, peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the attacker to see every node on the topic", func() bool { return len(topic.ListPeers()) >= len(a.all) })
	return h, topic
}

func publish(t *testing.T, topic *pubsub.Topic, env *wire.Envelope) {
	t.Helper()
	raw, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := wire.EncodeBackground(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(context.Background(), frame); err != nil {
		t.Fatal(err)
	}
}

// byID counts a node's deliveries of one message ID among those with the
// given nonce.
func byID(n *node, nonce uint64, id wire.MessageID) (match, other int) {
	for _, d := range n.deliveries(nonce) {
		if d.ID == id {
			match++
		} else {
			other++
		}
	}
	return match, other
}

// A forgery that reuses an honest broadcast's nonce cannot suppress it, in
// either order: one forgery is signed by the attacker (another message,
// delivered as the attacker's), one copies the honest signature onto other
// content (rejected everywhere). Every node delivers the genuine message
// exactly once and never the forgery under the honest origin.
func TestForgedNonceCannotSuppressTheGenuineMessage(t *testing.T) {
	for _, forgeryFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("forgery first %v", forgeryFirst), func(t *testing.T) {
			a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0"}, nil)
			ah, topic := gossiper(t, a)
			attackerKey := ah.Peerstore().PrivKey(ah.ID())
			origin := a.honest[0]

			genuine, err := wire.NewEnvelope(wrapperspb.String("the genuine block"))
			if err != nil {
				t.Fatal(err)
			}
			// The nonce is known before the genuine message is sent, as an
			// attacker that saw it on one path and races another would.
			sealed, err := wire.Seal(attackNetwork, proto.Clone(genuine).(*wire.Envelope), origin.key.Private, identity.Address{}, time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			forgedContent, _ := anypb.New(wrapperspb.String("the attacker's block"))
			own := &wire.Envelope{Content: forgedContent, Nonce: genuine.GetNonce()}
			ownSigned, err := wire.Seal(attackNetwork, own, attackerKey, identity.Address{}, time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			stolen := proto.Clone(sealed.Envelope).(*wire.Envelope)
			stolen.Content = forgedContent
			forge := func() {
				publish(t, topic, ownSigned.Envelope)
				publish(t, topic, stolen)
			}
			if forgeryFirst {
				forge()
				waitFor(t, 10*time.Second, "the attacker's own forgery to arrive", func() bool {
					for _, n := range a.all {
						if m, _ := byID(n, genuine.GetNonce(), ownSigned.ID); m != 1 {
							return false
						}
					}
					return true
				})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := origin.mod.BroadcastEnvelope(ctx, sealed.Envelope); err != nil {
				t.Fatal(err)
			}
			if !forgeryFirst {
				forge()
			}
			others := []*node{a.victim, a.honest[1]}
			waitFor(t, 15*time.Second, "every node to deliver the genuine message and the attacker's own", func() bool {
				for _, n := range others {
					if m, _ := byID(n, genuine.GetNonce(), sealed.ID); m != 1 {
						return false
					}
					if m, _ := byID(n, genuine.GetNonce(), ownSigned.ID); m != 1 {
						return false
					}
				}
				return true
			})
			time.Sleep(500 * time.Millisecond) // late copies, if any, show by now
			attackerAddr, _ := identity.AddressFromPublicKey(attackerKey.GetPublic())
			for i, n := range others {
				for _, d := range n.deliveries(genuine.GetNonce()) {
					switch d.ID {
					case sealed.ID:
						if d.From != origin.key.Address {
							t.Errorf("node %d: the genuine message names %s", i, d.From)
						}
					case ownSigned.ID:
						if d.From != attackerAddr {
							t.Errorf("node %d: the attacker's message names %s, not the attacker", i, d.From)
						}
					default:
						t.Errorf("node %d delivered a forgery %s from %s", i, d.ID, d.From)
					}
				}
				if m, _ := byID(n, genuine.GetNonce(), sealed.ID); m != 1 {
					t.Errorf("node %d delivered the genuine message %d times", i, m)
				}
			}
			if rej := a.victim.mod.Stats().Background.GossipRejected.Signature; rej == 0 {
				t.Errorf("the victim did not count the stolen-signature forgery")
			}
			if r := a.honestDelivery(t, 5, "after forgery"); r != 1 {
				t.Fatalf("honest delivery ratio %.3f, want 1", r)
			}
		})
	}
}

// After a flood of valid messages that overruns the victim's deduper, a
// captured honest message replayed by direct send and by gossip is never
// delivered twice, and honest traffic still arrives in full.
func TestReplayAfterAFloodIsNeverDeliveredTwice(t *testing.T) {
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0"}, func(c *p2p.Config) {
		c.DedupCapacity = 64 // so the flood overruns it
	})
	origin, victim := a.honest[0], a.victim
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	captured, err := origin.mod.Send(ctx, victim.key.Address, wrapperspb.String("pay 10 to bob"))
	if err != nil {
		t.Fatal(err)
	}
	broadcast, err := origin.mod.Broadcast(ctx, wrapperspb.String("block 1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the victim to get both", func() bool {
		return len(victim.deliveries(captured.GetNonce())) == 1 && len(victim.deliveries(broadcast.GetNonce())) == 1
	})

	// The flood: unique, validly signed messages, by gossip and directly.
	ah, topic := gossiper(t, a)
	key := ah.Peerstore().PrivKey(ah.ID())
	direct, err := unicast.New(ah, unicast.DefaultConfig(background.UnicastProtocolID(attackNetwork)), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	const flood = 1000
	flooded := make(chan error, 1)
	go func() {
		for i := range flood {
			e, _ := wire.NewEnvelope(wrapperspb.String(fmt.Sprintf("flood %d", i)))
			to := identity.Address{}
			if i%2 == 1 {
				to = victim.key.Address
			}
			m, err := wire.Seal(attackNetwork, e, key, to, time.Now(), 0)
			if err != nil {
				flooded <- err
				return
			}
			frame, _ := wire.EncodeBackground(m.Raw)
			if to.IsZero() {
				if err := topic.Publish(ctx, frame); err != nil {
					flooded <- err
					return
				}
				continue
			}
			if direct.Send(ctx, victim.host.ID(), frame) != nil {
				break // the victim may cut a flooding peer off
			}
		}
		flooded <- nil
	}()
	// Honest traffic during the flood.
	if r := a.honestDelivery(t, 5, "during the flood"); r != 1 {
		t.Fatalf("honest delivery ratio during the flood %.3f, want 1", r)
	}
	if err := <-flooded; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the flood to overrun the victim's deduper", func() bool {
		s := victim.mod.Stats()
		return s.Delivered[p2p.RouterBackground] > 64
	})

	// The replays, from a fresh peer: the captured unicast directly, the
	// broadcast both directly and by gossip.
	rh, rtopic := gossiper(t, a)
	replayer, err := unicast.New(rh, unicast.DefaultConfig(background.UnicastProtocolID(attackNetwork)), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer replayer.Close()
	before := victim.mod.Stats()
	for _, env := range []*wire.Envelope{captured, broadcast} {
		raw, _ := proto.Marshal(env)
		frame, _ := wire.EncodeBackground(raw)
		if err := replayer.Send(ctx, victim.host.ID(), frame); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, rtopic, broadcast)
	waitFor(t, 10*time.Second, "the replays to be refused", func() bool {
		// The unicast, and the broadcast envelope sent directly, which
		// lazy gossip takes as a full node's submission.
		// The flood pushed out only its own origin's keys, so both are
		// still remembered; had they been forgotten, their origin's floor
		// would refuse them as too old.
		s := victim.mod.Stats()
		refused := s.TooOld + s.Duplicates - before.TooOld - before.Duplicates
		return refused >= 2 && s.Background.Submissions > before.Background.Submissions
	}, func() string { return fmt.Sprintf("stats %+v", victim.mod.Stats()) })
	time.Sleep(300 * time.Millisecond) // absence cannot be awaited: a second delivery would show by now
	if n := len(victim.deliveries(captured.GetNonce())); n != 1 {
		t.Fatalf("the captured unicast was delivered %d times", n)
	}
	if n := len(victim.deliveries(broadcast.GetNonce())); n != 1 {
		t.Fatalf("the captured broadcast was delivered %d times", n)
	}
	if r := a.honestDelivery(t, 10, "after the flood"); r != 1 {
		t.Fatalf("honest delivery ratio %.3f, want 1", r)
	}
}

// A flood of validly signed messages dated as far ahead as the clock skew
// allows, past the victim's dedup capacity, pushes out only its own
// origin's keys: honest broadcasts, created now, are still delivered
// everywhere. Before, the flood raised one floor for everyone to its own
// dates, and the victim refused every honest message until then.
func TestAFloodDatedAheadRaisesOnlyItsOwnFloor(t *testing.T) {
	const capacity = 64
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0"}, func(c *p2p.Config) {
		c.DedupCapacity = capacity
	})
	victim := a.victim
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ah, topic := gossiper(t, a)
	key := ah.Peerstore().PrivKey(ah.ID())
	ahead := p2p.DefaultConfig().ClockSkew - 2*time.Second
	for i := range 4 * capacity {
		e, _ := wire.NewEnvelope(wrapperspb.String(fmt.Sprintf("dated ahead %d", i)))
		m, err := wire.Seal(attackNetwork, e, key, identity.Address{}, time.Now().Add(ahead), 0)
		if err != nil {
			t.Fatal(err)
		}
		frame, _ := wire.EncodeBackground(m.Raw)
		if err := topic.Publish(ctx, frame); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "the flood to overrun the victim's deduper", func() bool {
		return victim.mod.Stats().Delivered[p2p.RouterBackground] > 2*capacity
	})
	// Honest broadcasts reach the victim, whichever router brings them:
	// none is refused as too old. The victim may refuse the flood's own
	// messages as too old (TooOld), and rightly: a copy that comes again
	// by another router after its key was pushed out is below its
	// origin's raised floor.
	if r := a.honestDelivery(t, 10, "after a flood dated ahead"); r != 1 {
		t.Fatalf("honest delivery ratio %.3f, want 1 (victim: %+v)", r, victim.mod.Stats())
	}
}

// A validator that relays honest broadcasts with altered content is caught
// by the signature: nothing altered is delivered, each frame is counted and
// reported against it, it ends up disconnected, and honest broadcasts keep
// arriving.
func TestRelayAlteringContentIsCaughtAndCutOff(t *testing.T) {
	insider, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var reported atomic.Int64
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0"}, func(c *p2p.Config) {
		c.OnInvalidPeer = func(r p2p.RouterName, from peer.ID, _ error) {
			if r == p2p.RouterRainTree && from == insider.PeerID {
				reported.Add(1)
			}
		}
	}, insider)
	victim := a.victim
	h := attackerWithKey(t, "/ip4/127.0.0.1/tcp/0", insider)
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.host.ID(), Addrs: victim.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	relay, err := unicast.New(h, unicast.DefaultConfig(raintree.ProtocolID(attackNetwork)), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	set := victim.mod.ValidatorSet()
	vi, _ := set.IndexOf(victim.key.Address)
	altered, _ := anypb.New(wrapperspb.String("altered by the relay"))
	var ids []wire.MessageID
	for i := range 3 {
		e, _ := wire.NewEnvelope(wrapperspb.String(fmt.Sprintf("honest %d", i)))
		m, err := wire.Seal(attackNetwork, e, a.honest[0].key.Private, identity.Address{}, time.Now(), 0)
		if err != nil {
			t.Fatal(err)
		}
		bad := proto.Clone(m.Envelope).(*wire.Envelope)
		bad.Content = altered
		raw, _ := proto.Marshal(bad)
		frame, _ := proto.Marshal(&wire.RainTreeMessage{
			Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Level: 1, Data: raw, MessageId: m.ID[:],
			SetHeight: set.Height(), SetHash: set.Hash(), SpanStart: uint32(vi), SpanLen: 1,
		})
		if err := relay.Send(ctx, victim.host.ID(), frame); err != nil {
			break // already cut off
		}
		ids = append(ids, m.ID)
	}
	waitFor(t, 10*time.Second, "the victim to disconnect the relay", func() bool {
		return victim.host.Network().Connectedness(insider.PeerID) != lpnet.Connected
	}, func() string { return fmt.Sprintf("stats %+v", victim.mod.Stats().RainTree) })
	st := victim.mod.Stats()
	if st.RainTree.Dropped.BadSignature == 0 || st.InvalidPeers == 0 || reported.Load() == 0 {
		t.Fatalf("bad signatures %d, invalid peers %d, reported %d; want all > 0",
			st.RainTree.Dropped.BadSignature, st.InvalidPeers, reported.Load())
	}
	if st.RainTreeUnicast.PeersDisconnected == 0 {
		t.Fatalf("the relay was not disconnected: %+v", st.RainTreeUnicast)
	}
	for _, n := range a.all {
		n.mu.Lock()
		for _, ds := range n.got {
			for _, d := range ds {
				var s wrapperspb.StringValue
				if d.Envelope.GetContent().UnmarshalTo(&s) == nil && s.GetValue() == "altered by the relay" {
					t.Errorf("altered content was delivered as %s's", d.From)
				}
			}
		}
		n.mu.Unlock()
	}
	if r := a.honestDelivery(t, 10, "after the altering relay"); r != 1 {
		t.Fatalf("honest delivery ratio %.3f, want 1", r)
	}
}

// Frames that are not ACKs on the ACK protocol, and ACKs nobody waits for,
// are refused without effect on honest traffic.
func TestGarbageOnTheACKProtocolIsRefused(t *testing.T) {
	insider, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a := newArena(t, "/ip4/127.0.0.1/tcp/0", []string{"/ip4/127.0.0.1/tcp/0"}, nil, insider)
	victim := a.victim
	h := attackerWithKey(t, "/ip4/127.0.0.1/tcp/0", insider)
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: victim.host.ID(), Addrs: victim.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	u, err := unicast.New(h, unicast.DefaultConfig(raintree.ACKProtocolID(attackNetwork)), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	stray, _ := proto.Marshal(&wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_ACK, Level: 1, MessageId: make([]byte, 32)})
	notACK, _ := proto.Marshal(&wire.RainTreeMessage{Kind: wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST, Level: 1})
	for _, f := range [][]byte{stray, stray, notACK, {0xff, 0x01}} {
		if err := u.Send(ctx, victim.host.ID(), f); err != nil {
			break
		}
	}
	waitFor(t, 10*time.Second, "the frames to be counted", func() bool {
		s := victim.mod.Stats().RainTree
		return s.AcksUnexpected == 2 && s.Dropped.Malformed >= 1
	}, func() string { return fmt.Sprintf("stats %+v", victim.mod.Stats().RainTree) })
	if r := a.honestDelivery(t, 10, "after ACK garbage"); r != 1 {
		t.Fatalf("honest delivery ratio %.3f, want 1", r)
	}
}
