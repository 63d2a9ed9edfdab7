package background

import (
	"context"
	"fmt"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestScoringConfigIsValidatedAndBuildsValidPubsubParams(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ScoreParams)
		fails  bool
	}{
		{"the defaults are valid", func(*ScoreParams) {}, false},
		{"disabled scoring needs no parameters", func(s *ScoreParams) { *s = ScoreParams{Disabled: true} }, false},
		{"a positive invalid-message weight is refused", func(s *ScoreParams) { s.InvalidMessageWeight = 1 }, true},
		{"a decay of 1 never forgets and is refused", func(s *ScoreParams) { s.InvalidMessageDecay = 1 }, true},
		{"thresholds out of order are refused", func(s *ScoreParams) { s.GraylistThreshold = -1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := DefaultScoreParams()
			tt.mutate(&s)
			if err := s.validate(); (err != nil) != tt.fails {
				t.Fatalf("validate = %v, want failure %v", err, tt.fails)
			}
		})
	}
	params, thresholds := DefaultScoreParams().peerScore("t")
	if tp := params.Topics["t"]; tp.MeshMessageDeliveriesWeight != 0 || tp.MeshFailurePenaltyWeight != 0 {
		t.Fatalf("mesh-delivery penalties are on: P3 %v, P3b %v", tp.MeshMessageDeliveriesWeight, tp.MeshFailurePenaltyWeight)
	}
	// pubsub validates both when the router is built.
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := pubsub.NewGossipSub(ctx, h, pubsub.WithPeerScore(params, thresholds)); err != nil {
		t.Fatalf("pubsub refused the parameters: %v", err)
	}
}

// A stock gossipsub peer that publishes invalid messages on the topic is
// graylisted and disconnected within a few heartbeats, while an honest
// peer's messages keep arriving. A validator is no exception: the score a
// full node of a lazy network gives the validators to keep them in its
// mesh (keptScore) does not keep one that sends invalid messages, in its
// mesh or connected.
func TestAnInvalidGossipSpammerIsGraylistedAndDisconnected(t *testing.T) {
	for _, tc := range []struct {
		name      string
		validator bool
	}{
		{name: "a stranger"},
		{name: "a validator the full node keeps in its mesh", validator: true},
	} {
		t.Run(tc.name, func(t *testing.T) { spamAndAwaitDisconnection(t, tc.validator) })
	}
}

func spamAndAwaitDisconnection(t *testing.T, validator bool) {
	const net = "spam"
	cfg := testConfig(net)
	victim, honest := startNode(t, cfg), startNode(t, cfg)
	connect(t, honest.h, victim.h)

	spamHost := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, spamHost, pubsub.WithMaxMessageSize(1<<20),
		pubsub.WithNoAuthor(), pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { return wire.BackgroundMessageID(net, m.GetData()) }))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(TopicName(net))
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	if validator {
		// Both peers are validators to the victim, a full node: it scores
		// them keptScore, and grafts the spammer once it subscribes.
		victim.r.SetValidatorIDs(nil, []peer.ID{spamHost.ID(), honest.h.ID()})
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel()
	}
	connect(t, spamHost, victim.h)
	waitReady(t, victim, 1)
	eventually(t, 10*time.Second, "the spammer to see the victim on the topic", func() bool { return len(topic.ListPeers()) > 0 })
	if validator {
		eventually(t, 10*time.Second, "the spamming validator in the victim's mesh", func() bool {
			return victim.h.ConnManager().IsProtected(spamHost.ID(), meshTag(net))
		})
		// Scores are read once a heartbeat (WithPeerScoreInspect).
		eventually(t, 10*time.Second, "the victim to score the validator at least keptScore before the spam", func() bool {
			sc, ok := victim.r.Score(spamHost.ID())
			return ok && sc >= keptScore
		})
	}

	const spam = 5000
	start := time.Now()
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		for i := range spam {
			// Not a BackgroundMessage: the victim's validator rejects it.
			if topic.Publish(ctx, []byte{0xff, byte(i), byte(i >> 8), 0x01}) != nil {
				return
			}
			n++
		}
	}()
	eventually(t, 10*time.Second, "the spammer to be disconnected", func() bool {
		return victim.h.Network().Connectedness(spamHost.ID()) != network.Connected
	})
	took := time.Since(start)
	if beats := took / cfg.Gossip.HeartbeatInterval; beats > 10 {
		t.Errorf("disconnected after %v, %d heartbeats; want a few", took, beats)
	}
	cancel()
	n := <-published
	st := victim.r.Stats()
	if st.ScoreDisconnects == 0 || st.GossipRejected.Malformed == 0 {
		t.Fatalf("stats %+v: want a score disconnect and rejected messages", st)
	}
	if sc, ok := victim.r.Score(spamHost.ID()); !ok || sc >= cfg.Scoring.GraylistThreshold {
		t.Fatalf("spammer score %v (known %v), want below %v", sc, ok, cfg.Scoring.GraylistThreshold)
	}
	if sc, ok := victim.r.Score(honest.h.ID()); (ok && sc < 0) || (validator && sc < keptScore) {
		t.Fatalf("the honest peer lost score: %v", sc)
	}
	t.Logf("spammer disconnected %v after its first message (heartbeat %v), having published %d; the victim rejected %d",
		took, cfg.Gossip.HeartbeatInterval, n, st.GossipRejected.Malformed)

	// Honest delivery continues.
	env := envelope(t, honest, "after the spam")
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer bcancel()
	if err := honest.r.Broadcast(bctx, env); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the honest broadcast", func() bool { return len(victim.in.deliveries(env)) == 1 })
}

func TestDirectSendsBeyondTheRateAreDroppedAndCounted(t *testing.T) {
	cfg := testConfig("rate")
	cfg.DirectRate, cfg.DirectBurst = 1, 20
	victim, sender := startNode(t, cfg), startNode(t, cfg)
	connect(t, sender.h, victim.h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const sent = 200
	for i := range sent {
		if err := sender.r.Send(ctx, victim.h.ID(), direct(t, sender, addr(t, victim), "flood"+string(rune('a'+i%26))+time.Now().String())); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "every frame to be handled", func() bool {
		st := victim.r.Stats()
		return st.DeliveredUnicast+st.DroppedRateLimited == sent
	})
	st := victim.r.Stats()
	// The burst, plus at most a few tokens refilled while the flood ran.
	if st.DeliveredUnicast < 20 || st.DeliveredUnicast > 40 {
		t.Fatalf("delivered %d of %d with a burst of 20 at 1/s", st.DeliveredUnicast, sent)
	}
	if other := startNode(t, cfg); other != nil {
		connect(t, other.h, victim.h)
		if err := other.r.Send(ctx, victim.h.ID(), direct(t, other, addr(t, victim), "another peer")); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "another peer's send, unaffected by the flood", func() bool {
			return victim.r.Stats().DeliveredUnicast == st.DeliveredUnicast+1
		})
	}
}

// A peer that spent its burst keeps an empty bucket while the victim keeps
// at most MaxRateLimitedPeers of them. Past that, an idle bucket (full
// again) goes first, losing nothing; here none is idle, so the flooder's
// is forgotten, counted, and it may send one more burst.
func TestRateLimitBucketsAreBoundedAndForgettingIsCounted(t *testing.T) {
	cfg := testConfig("rate-bound")
	cfg.DirectRate, cfg.DirectBurst, cfg.MaxRateLimitedPeers = 0.01, 2, 1
	victim, flooder, other := startNode(t, cfg), startNode(t, cfg), startNode(t, cfg)
	connect(t, flooder.h, victim.h)
	connect(t, other.h, victim.h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	send := func(from *node, n int, tag string) {
		for i := range n {
			if err := from.r.Send(ctx, victim.h.ID(), direct(t, from, addr(t, victim), fmt.Sprint(tag, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	handled := func(n uint64) func() bool {
		return func() bool { st := victim.r.Stats(); return st.DeliveredUnicast+st.DroppedRateLimited == n }
	}
	send(flooder, 3, "flood")
	eventually(t, 10*time.Second, "the flood to be handled", handled(3))
	send(other, 1, "other")
	eventually(t, 10*time.Second, "the other peer's send", handled(4))
	if st := victim.r.Stats(); st.RateLimitForgotten != 1 || st.DroppedRateLimited != 1 || st.DeliveredUnicast != 3 {
		t.Fatalf("stats %+v, want the flooder's bucket forgotten once, 1 dropped, 3 delivered", st)
	}
}
