package background

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A peer that joins the mesh right after a message went through must still
// get it. Gossipsub alone never sends it: the message was forwarded before
// the peer was in the mesh, and once grafted the peer is excluded from
// IHAVE gossip.
func TestPeerJoiningTheMeshGetsRecentMessages(t *testing.T) {
	cfg := testConfig("catchup")
	// A gossip window (1s) comfortably longer than connecting plus one
	// heartbeat, so the test does not depend on scheduling.
	cfg.Gossip.HistoryLength, cfg.Gossip.HistoryGossip = 20, 10
	a, b := startNode(t, cfg), startNode(t, cfg)
	connect(t, a.h, b.h)
	waitReady(t, a, 1)
	waitReady(t, b, 1)

	env := envelope(t, a, "just before you joined")
	if err := a.r.Broadcast(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b to receive the broadcast", func() bool { return len(b.in.deliveries(env)) == 1 })

	// c knows only b, and b has already forwarded the message.
	c := startNode(t, cfg)
	connect(t, c.h, b.h)
	eventually(t, 5*time.Second, "c to catch up on the broadcast", func() bool { return len(c.in.deliveries(env)) > 0 })
	time.Sleep(3 * cfg.Gossip.HeartbeatInterval) // absence of a second delivery cannot be awaited
	if got := c.in.deliveries(env); len(got) != 1 || got[0].origin != addr(t, a) || got[0].from != b.h.ID() || got[0].via != ViaGossip {
		t.Fatalf("c got %+v, want one delivery from %s relayed by %s via gossip", got, addr(t, a), b.h.ID())
	}
}

// Without flood publishing, a publisher sends its message to its mesh
// only. A peer whose subscription it knows but that it has not grafted yet
// must still get the message once grafted, although pubsub never reports a
// node's own publications to its tracers.
func TestPeerJoiningThePublishersMeshGetsItsOwnMessage(t *testing.T) {
	cfg := testConfig("catchup-own")
	cfg.Gossip.FloodPublish = false
	// Heartbeats far apart: the publish surely lands before the first graft.
	cfg.Gossip.HeartbeatInterval = 500 * time.Millisecond
	for i := range 3 {
		a, b := startNode(t, cfg), startNode(t, cfg)
		connect(t, b.h, a.h)
		eventually(t, 5*time.Second, "a to see b's subscription", func() bool { return len(a.r.TopicPeers()) == 1 })
		env := envelope(t, a, "published before the mesh formed")
		if err := a.r.Broadcast(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "b to receive it", func() bool { return len(b.in.deliveries(env)) == 1 })
		t.Logf("round %d delivered", i)
	}
}

func TestGraftCatchUpAdvertisesOnlyTheGossipWindow(t *testing.T) {
	p := pubsub.DefaultGossipSubParams()
	p.HeartbeatInterval, p.HistoryGossip, p.HistoryLength = time.Second, 3, 5
	p.MaxIHaveLength = 3
	g := newGraftCatchUp(nil, "topic", p, new(atomic.Uint64))
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	if g.window != 3*time.Second {
		t.Fatalf("window %v, want 3s", g.window)
	}

	neighbour := peer.ID("neighbour")
	deliver := func(id, topic string, from peer.ID) {
		g.onDeliver(&pubsub.Message{Message: &pb.Message{Topic: &topic}, ID: id, ReceivedFrom: from})
	}
	deliver("old", "topic", "")
	now = now.Add(2 * time.Second)
	deliver("other topic", "elsewhere", "")
	deliver("from neighbour", "topic", neighbour)
	deliver("own", "topic", "")
	now = now.Add(time.Second) // "old" is now out of the window

	check := func(to peer.ID, want ...string) {
		t.Helper()
		got := g.idsFor(to)
		if len(got) != len(want) {
			t.Fatalf("advertised %q to %s, want %q", got, to, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("advertised %q to %s, want %q", got, to, want)
			}
		}
	}
	check("someone", "from neighbour", "own")
	check(neighbour, "own")

	// At the cap the oldest entries make room, counted.
	deliver("x", "topic", "")
	deliver("y", "topic", "")
	check("someone", "own", "x", "y")
	if n := g.forgotten.Load(); n != 1 {
		t.Fatalf("%d entries forgotten at the cap, want 1 (the expired one just expires)", n)
	}

	// A window of zero (HistoryLength 1) turns catch-up off.
	p.HistoryLength, p.HistoryGossip = 1, 1
	if g := newGraftCatchUp(nil, "topic", p, new(atomic.Uint64)); g.window != 0 {
		t.Fatalf("window %v with HistoryLength 1, want 0", g.window)
	}
}
