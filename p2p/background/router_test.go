package background

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/unicast"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestEveryPubSubKindDeliversEachBroadcastExactlyOnce(t *testing.T) {
	for _, kind := range []PubSubKind{GossipSub, RandomSub, FloodSub} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := testConfig("kinds")
			cfg.PubSub = kind
			const n = 5
			nodes := make([]*node, n)
			for i := range nodes {
				nodes[i] = startNode(t, cfg)
			}
			// A ring: every message needs at least one relay to reach the
			// far side.
			for i := range nodes {
				connect(t, nodes[i].h, nodes[(i+1)%n].h)
			}
			for _, nd := range nodes {
				waitReady(t, nd, 2)
			}
			var envs []*wire.Message
			for i := range 10 {
				origin := nodes[i%2*2] // nodes 0 and 2
				env := envelope(t, origin, fmt.Sprintf("%s-%d", kind, i))
				if err := origin.r.Broadcast(context.Background(), env); err != nil {
					t.Fatal(err)
				}
				envs = append(envs, env)
			}
			for i, nd := range nodes {
				want := 0
				for j := range envs {
					if nodes[j%2*2] != nd {
						want++
					}
				}
				eventually(t, 15*time.Second, fmt.Sprintf("node %d to receive %d envelopes", i, want), func() bool {
					return nd.in.total() >= want
				})
			}
			// Leave time for late duplicates to show up, if any slipped through.
			time.Sleep(3 * cfg.Gossip.HeartbeatInterval)
			for i, nd := range nodes {
				for j, env := range envs {
					origin := nodes[j%2*2]
					got := nd.in.deliveries(env)
					if origin == nd {
						if len(got) != 0 {
							t.Errorf("node %d got its own broadcast back", i)
						}
						continue
					}
					if len(got) != 1 {
						t.Errorf("node %d got envelope %d %d times, want once", i, j, len(got))
						continue
					}
					if got[0].origin != addr(t, origin) || got[0].via != ViaGossip {
						t.Errorf("node %d: envelope %d delivered as %+v, want from %s via gossip", i, j, got[0], addr(t, origin))
					}
				}
			}
		})
	}
}

func TestBroadcastErrors(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	env := signed(t, key, "errs", "x")
	big := signed(t, key, "errs", string(make([]byte, testConfig("errs").MaxMessageSize)))
	tests := []struct {
		name string
		set  func(t *testing.T) *Router
		env  *wire.Message
		want error
	}{
		{"before Start it is not started", func(t *testing.T) *Router {
			r, err := New(newHost(t), testConfig("errs"), (&inbox{}).handle)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		}, env, ErrNotStarted},
		{"alone it has no peers", func(t *testing.T) *Router {
			return startNode(t, testConfig("errs")).r
		}, env, ErrNoPeers},
		{"connected only to another network it has no peers", func(t *testing.T) *Router {
			a := startNode(t, testConfig("errs"))
			b := startNode(t, testConfig("other"))
			connect(t, a.h, b.h)
			time.Sleep(200 * time.Millisecond) // let subscriptions be exchanged
			return a.r
		}, env, ErrNoPeers},
		{"an oversized envelope is refused locally", func(t *testing.T) *Router {
			return startNode(t, testConfig("errs")).r
		}, big, wire.ErrTooLarge},
		{"after Close it is closed", func(t *testing.T) *Router {
			r := startNode(t, testConfig("errs")).r
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			return r
		}, env, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.set(t)
			if err := r.Broadcast(context.Background(), tt.env); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if r.Stats().PublishErrors != 1 {
				t.Fatalf("PublishErrors = %d, want 1", r.Stats().PublishErrors)
			}
		})
	}
}

// The start-up gap: peers are connected and subscribed, but no heartbeat
// has run since, so the gossipsub mesh is empty. Flood publishing is what
// makes the first broadcast arrive.
func TestBroadcastBeforeFirstMeshHeartbeat(t *testing.T) {
	tests := []struct {
		name         string
		floodPublish bool
		delivered    bool
	}{
		{"with flood publish it is delivered", true, true},
		{"without flood publish it is lost", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("startup")
			cfg.Gossip.HeartbeatInterval = time.Hour
			cfg.Gossip.FloodPublish = tt.floodPublish
			a, b := emptyMeshPair(t, cfg)
			env := envelope(t, a, "early")
			if err := a.r.Broadcast(context.Background(), env); err != nil {
				t.Fatal(err)
			}
			if tt.delivered {
				eventually(t, 5*time.Second, "delivery", func() bool { return len(b.in.deliveries(env)) == 1 })
				return
			}
			time.Sleep(time.Second) // absence cannot be awaited
			if got := b.in.deliveries(env); len(got) != 0 {
				t.Fatalf("delivered %d times without flood publish; the mesh was not empty", len(got))
			}
		})
	}
}

// emptyMeshPair starts two connected nodes whose first heartbeat ran
// before they connected, so their mesh is empty for an hour. The first
// heartbeat runs 100ms after start, and the nodes wait 400ms for it
// before they connect; on a loaded machine it may run later, after they
// connect, and then the pair is started again.
func emptyMeshPair(t *testing.T, cfg Config) (a, b *node) {
	t.Helper()
	for range 3 {
		a, b = startNode(t, cfg), startNode(t, cfg)
		time.Sleep(400 * time.Millisecond)
		connect(t, a.h, b.h)
		waitReady(t, a, 1)
		if !a.r.IsMeshPeer(b.h.ID()) && !b.r.IsMeshPeer(a.h.ID()) {
			return a, b
		}
	}
	t.Fatal("the first heartbeat ran after the nodes connected, three times")
	return nil, nil
}

func TestWaitReady(t *testing.T) {
	cfg := testConfig("ready")
	a, b, c := startNode(t, cfg), startNode(t, cfg), startNode(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := a.r.WaitReady(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("alone: got %v, want deadline exceeded", err)
	}
	if err := a.r.WaitReady(context.Background(), 0); err != nil {
		t.Fatalf("zero peers: %v", err)
	}

	done := make(chan error, 1)
	go func() { done <- a.r.WaitReady(context.Background(), 2) }()
	connect(t, a.h, b.h)
	connect(t, a.h, c.h)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitReady did not return after two peers joined")
	}
	if got := len(a.r.TopicPeers()); got < 2 {
		t.Fatalf("TopicPeers has %d peers after WaitReady(2)", got)
	}

	go func() { done <- a.r.WaitReady(context.Background(), 10) }()
	select { // it waits: ten peers will not come
	case err := <-done:
		t.Fatalf("WaitReady(10) returned %v with %d peers", err, len(a.r.TopicPeers()))
	case <-time.After(100 * time.Millisecond): // absence cannot be awaited
	}
	_ = a.r.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: got %v, want ErrClosed", err)
	}
}

// rawPublisher joins a network's topic with a stock gossipsub instance
// configured as docs/PROTOCOL.md says (no author, no pubsub signature) but
// without a validator, to put arbitrary bytes on the wire.
func rawPublisher(t *testing.T, network string) (*node, *pubsub.Topic) {
	t.Helper()
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true), pubsub.WithMaxMessageSize(1<<20),
		pubsub.WithNoAuthor(), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return wire.BackgroundMessageID(network, m.GetData()) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(TopicName(network))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = topic.Close() })
	return &node{h: h}, topic
}

func backgroundFrame(t *testing.T, e *wire.Envelope) []byte {
	t.Helper()
	env, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := proto.Marshal(&wire.BackgroundMessage{Data: env})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func TestInvalidGossipIsRejectedAndCounted(t *testing.T) {
	cfg := testConfig("invalid")
	// Every invalid message must reach both nodes to be counted; with
	// scoring on, the sender may be graylisted half way through the burst
	// (penalties have their own test).
	cfg.Scoring.Disabled = true
	a, b := startNode(t, cfg), startNode(t, cfg)
	x, topic := rawPublisher(t, "invalid")
	connect(t, a.h, b.h)
	connect(t, x.h, a.h)
	connect(t, x.h, b.h)
	eventually(t, 10*time.Second, "raw publisher to see both nodes", func() bool { return len(topic.ListPeers()) == 2 })

	big := wrapperspb.Bytes(make([]byte, cfg.MaxMessageSize))
	bigEnv, _ := wire.NewEnvelope(big)
	bad := []struct {
		name  string
		frame []byte
	}{
		{"garbage", []byte{0xff, 0xfe, 0xfd, 0x00, 0x01}},
		{"empty background message", backgroundFrame(t, &wire.Envelope{})[:0]},
		{"zero nonce", backgroundFrame(t, &wire.Envelope{Content: mustAny(t)})},
		{"no content", backgroundFrame(t, &wire.Envelope{Nonce: 7})},
		{"oversized", backgroundFrame(t, bigEnv)},
		{"unsigned", backgroundFrame(t, mustEnvelope(t))},
		{"altered after signing", alteredFrame(t, x)},
	}
	for _, m := range bad {
		if err := topic.Publish(context.Background(), m.frame); err != nil {
			t.Fatalf("publishing %s: %v", m.name, err)
		}
	}
	sentinel := signed(t, x.h.Peerstore().PrivKey(x.h.ID()), "invalid", "valid")
	frame, err := wire.EncodeBackground(sentinel.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish(context.Background(), frame); err != nil {
		t.Fatal(err)
	}
	want := Rejections{Malformed: 1, TooLarge: 1, Empty: 1, InvalidEnvelope: 2, Signature: 2}
	for _, nd := range []*node{a, b} {
		eventually(t, 10*time.Second, "the valid message", func() bool { return len(nd.in.deliveries(sentinel)) == 1 })
		eventually(t, 5*time.Second, "rejections to be counted", func() bool { return nd.r.Stats().GossipRejected == want })
		if got := nd.in.total(); got != 1 {
			t.Errorf("node delivered %d messages, want only the valid one", got)
		}
	}
}

func TestForeignNetworkIsNeverDelivered(t *testing.T) {
	a := startNode(t, testConfig("home"))
	f1, f2 := startNode(t, testConfig("away")), startNode(t, testConfig("away"))
	connect(t, a.h, f1.h)
	connect(t, a.h, f2.h)
	connect(t, f1.h, f2.h)
	waitReady(t, f1, 1)
	env := envelope(t, f1, "foreign")
	if err := f1.r.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "delivery inside the foreign network", func() bool { return len(f2.in.deliveries(env)) == 1 })
	time.Sleep(300 * time.Millisecond) // absence cannot be awaited: a leak would show by now
	if got := a.in.total(); got != 0 {
		t.Fatalf("home node delivered %d foreign messages", got)
	}
	if peers := a.r.TopicPeers(); len(peers) != 0 {
		t.Fatalf("home topic has foreign peers %v", peers)
	}
}

// A line A - S - B with S silent: S gets A's message, B never does, and
// S's own broadcasts still go out.
func TestSilentNodeReceivesButDoesNotRelay(t *testing.T) {
	for _, kind := range []PubSubKind{GossipSub, FloodSub} {
		t.Run(string(kind), func(t *testing.T) {
			cfg := testConfig("silent")
			cfg.PubSub = kind
			silent := cfg
			silent.Silent = true
			a, s, b := startNode(t, cfg), startNode(t, silent), startNode(t, cfg)
			connect(t, a.h, s.h)
			connect(t, s.h, b.h)
			waitReady(t, a, 1)
			waitReady(t, s, 2)
			waitReady(t, b, 1)
			if kind == GossipSub { // a mesh, so a normal S would relay by push and gossip
				awaitMutualMesh(t, "silent", s, a, b)
			}

			env := envelope(t, a, "from A")
			if err := a.r.Broadcast(context.Background(), env); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "S to receive", func() bool { return len(s.in.deliveries(env)) == 1 })
			if got := s.in.deliveries(env)[0]; got.from != a.h.ID() || got.origin != addr(t, a) || got.via != ViaGossip {
				t.Fatalf("S got %+v", got)
			}
			// Several heartbeats: long enough for IHAVE/IWANT repair too.
			time.Sleep(10 * cfg.Gossip.HeartbeatInterval)
			if got := b.in.deliveries(env); len(got) != 0 {
				t.Fatalf("B received A's message through silent S")
			}
			if s.r.Stats().SilentWithheld != 1 {
				t.Fatalf("SilentWithheld = %d, want 1", s.r.Stats().SilentWithheld)
			}

			own := envelope(t, s, "from S")
			if err := s.r.Broadcast(context.Background(), own); err != nil {
				t.Fatal(err)
			}
			for _, nd := range []*node{a, b} {
				eventually(t, 5*time.Second, "S's own broadcast", func() bool { return len(nd.in.deliveries(own)) == 1 })
			}
		})
	}
}

func TestUnicastDeliversWithViaUnicast(t *testing.T) {
	cfg := testConfig("uni")
	a, b := startNode(t, cfg), startNode(t, cfg)
	env := direct(t, a, addr(t, b), "direct")
	connect(t, a.h, b.h)
	if err := a.r.Send(context.Background(), b.h.ID(), env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "unicast delivery", func() bool { return len(b.in.deliveries(env)) == 1 })
	if got := b.in.deliveries(env)[0]; got.from != a.h.ID() || got.origin != addr(t, a) || got.via != ViaUnicast {
		t.Fatalf("got %+v, want from %s via unicast", got, a.h.ID())
	}

	// A peer that bypasses our encoder: bad frames are counted, not delivered.
	rawHost := newHost(t)
	raw, err := unicast.New(rawHost, unicast.DefaultConfig(UnicastProtocolID("uni")), func(peer.ID, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	connect(t, rawHost, b.h)
	zeroNonce := backgroundFrame(t, &wire.Envelope{Content: mustAny(t)})
	// A genuine unicast of a's to another node, replayed to b: only its
	// recipient accepts it.
	replayed, err := wire.EncodeBackground(direct(t, a, addr(t, a), "for someone else").Raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, frame := range [][]byte{{0xff, 0xff}, zeroNonce, replayed} {
		if err := raw.Send(context.Background(), b.h.ID(), frame); err != nil {
			t.Fatal(err)
		}
	}
	want := Rejections{Malformed: 1, InvalidEnvelope: 1, Signature: 1}
	eventually(t, 5*time.Second, "bad unicast frames to be counted", func() bool { return b.r.Stats().UnicastRejected == want })
	if st := b.r.Stats(); st.DeliveredUnicast != 1 || b.in.total() != 1 {
		t.Fatalf("delivered %d unicast messages (handler saw %d), want 1", st.DeliveredUnicast, b.in.total())
	}
}

func mustEnvelope(t *testing.T) *wire.Envelope {
	t.Helper()
	e, err := wire.NewEnvelope(wrapperspb.String("unsigned"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// alteredFrame is a message signed by n whose content was changed after
// signing, as a dishonest relay would.
func alteredFrame(t *testing.T, n *node) []byte {
	t.Helper()
	m := signed(t, n.h.Peerstore().PrivKey(n.h.ID()), "invalid", "genuine")
	e := proto.Clone(m.Envelope).(*wire.Envelope)
	forged, err := anypb.New(wrapperspb.String("forged"))
	if err != nil {
		t.Fatal(err)
	}
	e.Content = forged
	return backgroundFrame(t, e)
}

func mustAny(t *testing.T) *anypb.Any {
	t.Helper()
	e, err := wire.NewEnvelope(wrapperspb.String("c"))
	if err != nil {
		t.Fatal(err)
	}
	return e.Content
}
