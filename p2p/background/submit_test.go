package background

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// A full node hands its broadcast to its parent. When the parent starts
// it, the broadcast comes back through gossip and the full node does not
// publish it; when the parent drops it, the full node publishes it after
// SubmitFallback, or as soon as the parent disconnects, and the rest of
// the network still gets it.
func TestASubmittedBroadcastIsPublishedOnlyIfItDoesNotComeBack(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		parentRelays, parentLeaves bool
		fallback                   time.Duration
	}{
		{name: "parent relays", parentRelays: true, fallback: 300 * time.Millisecond},
		{name: "parent drops", fallback: 300 * time.Millisecond},
		// A fallback longer than the test: only the disconnection can
		// make the full node publish in time.
		{name: "parent drops and disconnects", parentLeaves: true, fallback: time.Hour},
	} {
		parentRelays := tc.parentRelays
		t.Run(tc.name, func(t *testing.T) {
			network := "submit"
			cfg := testConfig(network)
			cfg.Gossip.LazyAmongValidators = true
			cfg.Gossip.SubmitFallback, cfg.Gossip.LargeSubmitFallback = tc.fallback, max(tc.fallback, cfg.Gossip.LargeSubmitFallback)
			// The parent relays (or not) what it is handed, as the Module does.
			parent := startValidator(t, cfg, func(v *node, _ peer.ID, msg *wire.Message) {
				if parentRelays {
					go v.r.Republish(context.Background(), msg) //nolint:errcheck // the test checks the outcome
				}
			})
			f, g := startNode(t, cfg), startNode(t, cfg)
			for _, n := range []*node{f, g} {
				n.r.SetValidatorIDs(nil, []peer.ID{parent.h.ID()})
			}
			connect(t, f.h, parent.h)
			connect(t, g.h, parent.h)
			connect(t, f.h, g.h)
			eventually(t, 5*time.Second, "f's parent", func() bool { return f.r.Parent() == parent.h.ID() })
			waitReady(t, f, 2)

			msg := envelope(t, f, "submitted")
			if err := f.r.Submit(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the parent getting the submission", func() bool {
				d := parent.in.deliveries(msg)
				return len(d) == 1 && d[0].via == ViaSubmit && d[0].from == f.h.ID()
			})
			if tc.parentLeaves {
				if err := parent.h.Network().ClosePeer(f.h.ID()); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 5*time.Second, "g getting the broadcast", func() bool { return len(g.in.deliveries(msg)) == 1 })
			eventually(t, 5*time.Second, "the fallback decision", func() bool {
				s := f.r.Stats()
				return s.SubmitReturned+s.SubmitFallbacks == 1
			})
			s := f.r.Stats()
			if s.Submitted != 1 || s.SubmitErrors != 0 {
				t.Fatalf("submitted %d, errors %d", s.Submitted, s.SubmitErrors)
			}
			if parentRelays && s.SubmitReturned != 1 {
				t.Fatalf("the relayed broadcast did not come back in time: %+v", s)
			}
			if !parentRelays && s.SubmitFallbacks != 1 {
				t.Fatalf("the dropped broadcast was not published: %+v", s)
			}
			if want := map[bool]uint64{true: 1}[tc.parentLeaves]; s.SubmitRecipientLeft != want {
				t.Fatalf("published %d submissions because the parent left, want %d", s.SubmitRecipientLeft, want)
			}
			if got := parent.r.Stats().Submissions; got != 1 {
				t.Fatalf("parent counted %d submissions", got)
			}
		})
	}
}

// Outside a lazy network, a broadcast envelope on the unicast protocol is
// misdirected: refused and counted.
func TestABroadcastOnUnicastIsRefusedOutsideALazyNetwork(t *testing.T) {
	cfg := testConfig("nosubmit")
	cfg.Gossip.LazyAmongValidators = false
	a, b := startNode(t, cfg), startNode(t, cfg)
	connect(t, a.h, b.h)
	msg := envelope(t, a, "not a unicast")
	if err := a.r.Send(context.Background(), b.h.ID(), msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the refusal", func() bool { return b.r.Stats().UnicastRejected.Signature == 1 })
	if b.in.total() != 0 || b.r.Stats().Submissions != 0 {
		t.Fatal("a broadcast on unicast was delivered")
	}
}

// A whole-ring submission becomes due at once when a connection to its
// parent closes, unless it already came back; other peers leaving change
// nothing, and what waited before it still waits.
func TestASubmissionIsDueOnceAConnectionToItsParentCloses(t *testing.T) {
	now := time.Now()
	parent, other := peer.ID("parent"), peer.ID("other")
	for _, tt := range []struct {
		name     string
		left     peer.ID
		returned bool
		due      int
	}{
		{"the parent leaves", parent, false, 1},
		{"a peer it was not handed to leaves", other, false, 0},
		{"it had come back already", parent, true, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := newLaterQueue(8)
			first, m := &wire.Message{ID: wire.MessageID{1}}, &wire.Message{ID: wire.MessageID{2}}
			// Queued first and due first: the heap must reorder for m.
			if !q.add(&pending{msg: first, at: now.Add(time.Minute)}) || !q.add(&pending{msg: m, at: now.Add(time.Hour), submitted: true, parent: parent}) {
				t.Fatal("queue refused")
			}
			if tt.returned {
				q.cameBack(m.ID)
			}
			if got := q.recipientLeft(tt.left, now); got != tt.due {
				t.Fatalf("recipientLeft = %d, want %d", got, tt.due)
			}
			due := q.due(now)
			if len(due) != tt.due || tt.due == 1 && (due[0].msg != m || !due[0].recipientLeft) {
				t.Fatalf("due now: %+v", due)
			}
			if next, ok := q.next(); !ok || !next.Equal(now.Add(time.Minute)) && tt.due == 1 {
				t.Fatalf("next due %v, %v: the earlier entry should still wait", next, ok)
			}
		})
	}
}
