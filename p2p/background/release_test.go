package background

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The bookkeeping behind early release, driven the way pubsub's tracer
// drives it: which signals end a hold, before it began or while it waits,
// and which are ignored.
func TestAHoldEndsOnceEveryValidatorInTheMeshHasTheMessage(t *testing.T) {
	const topic = "t"
	a := strings.Repeat("a", 32)
	sender, v1, v2, fullNode, outsider := peer.ID("sender"), peer.ID("v1"), peer.ID("v2"), peer.ID("full"), peer.ID("outsider")
	validators := map[peer.ID]bool{sender: true, v1: true, v2: true, outsider: true}
	tests := []struct {
		name           string
		before, during func(h *haveSignals)
		wantEarly      bool
		wantHeard      []peer.ID // who is on record as having a
	}{
		{"both validators said it before the message came", func(h *haveSignals) {
			h.idontwant(v1, dontWant(a))
			h.idontwant(v2, dontWant(a))
		}, nil, true, []peer.ID{v1, v2}},
		{"the last validator speaking during the hold ends it", func(h *haveSignals) {
			h.idontwant(v1, dontWant(a))
		}, func(h *haveSignals) { h.idontwant(v2, dontWant(a)) }, true, []peer.ID{v1, v2}},
		{"one validator's silence keeps the hold", func(h *haveSignals) { h.idontwant(v1, dontWant(a)) }, nil, false, []peer.ID{v1}},
		{"a full node's word does not count", nil, func(h *haveSignals) {
			h.idontwant(fullNode, dontWant(a))
			h.idontwant(v1, dontWant(a))
		}, false, []peer.ID{v1}},
		{"a validator outside the mesh is not heard", nil, func(h *haveSignals) {
			h.idontwant(outsider, dontWant(a))
			h.idontwant(v1, dontWant(a))
		}, false, []peer.ID{v1}},
		{"an IDONTWANT and a duplicate both count", func(h *haveSignals) {
			h.idontwant(v1, dontWant(a))
		}, func(h *haveSignals) {
			h.duplicate(&pubsub.Message{ID: a, ReceivedFrom: v2, Message: gossipMsg(topic)})
		}, true, []peer.ID{v1, v2}},
		{"an ID of another length is ignored", nil, func(h *haveSignals) {
			h.idontwant(v1, dontWant(a[:31]))
			h.idontwant(v2, dontWant(a))
		}, false, []peer.ID{v2}},
		{"a validator pruned before the hold is not waited for", func(h *haveSignals) {
			h.prune(v2, topic)
			h.idontwant(v1, dontWant(a))
		}, nil, true, []peer.ID{v1}},
		{"a validator that disconnects during the hold is no longer waited for", func(h *haveSignals) {
			h.idontwant(v1, dontWant(a))
		}, func(h *haveSignals) { h.gone(v2) }, true, []peer.ID{v1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHaveSignals(topic, validators, 16)
			for _, p := range []peer.ID{sender, v1, v2, fullNode} {
				h.graft(p, topic)
			}
			if tt.before != nil {
				tt.before(h)
			}
			// The sender has the message: it is never waited for.
			early := holdInBackground(t, h, a, sender, 200*time.Millisecond)
			if tt.during != nil {
				tt.during(h)
			}
			if got := <-early; got != tt.wantEarly {
				t.Fatalf("released early: %v, want %v", got, tt.wantEarly)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if got := h.ids[a].peers; !slices.Equal(got, tt.wantHeard) {
				t.Fatalf("on record as having it: %v, want %v", got, tt.wantHeard)
			}
			if len(h.ids) != 1 || len(h.holds) != 0 {
				t.Fatalf("%d IDs and %d holds left, want 1 and 0", len(h.ids), len(h.holds))
			}
		})
	}
	t.Run("a cancelled hold returns", func(t *testing.T) {
		h := testHaveSignals(topic, validators, 16)
		h.graft(v1, topic)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if h.wait(ctx, a, sender, time.Hour, 0, nil) {
			t.Fatal("released early without a signal")
		}
	})
}

// A flood of IDs evicts the oldest, but never the one a hold waits on.
func TestAWaitedForMessageIDIsNeverDropped(t *testing.T) {
	const topic = "t"
	v := peer.ID("v")
	h := testHaveSignals(topic, map[peer.ID]bool{v: true}, 2)
	h.graft(v, topic)
	held := strings.Repeat("h", 32)
	early := holdInBackground(t, h, held, "sender", time.Hour)
	for i := range 5 {
		h.idontwant(v, dontWant(strings.Repeat(string(rune('a'+i)), 32)))
	}
	if got := h.full.Load(); got == 0 {
		t.Fatal("no ID dropped; the test needs the limit to bite")
	}
	h.idontwant(v, dontWant(held))
	if !<-early {
		t.Fatal("the hold was not released: its entry was dropped")
	}
}

// holdInBackground starts a hold of id and returns once it waits (or has
// ended at once); the channel reports whether it ended early.
func holdInBackground(t *testing.T, h *haveSignals, id string, from peer.ID, d time.Duration) <-chan bool {
	t.Helper()
	early := make(chan bool, 1)
	go func() { early <- h.wait(context.Background(), id, from, d, 0, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		e := h.ids[id]
		waiting := e != nil && e.done != nil
		h.mu.Unlock()
		if waiting || len(early) > 0 {
			return early
		}
		if time.Now().After(deadline) {
			t.Fatal("the hold never began")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHeardMessageIDsStayBoundedAndTheOverflowIsCounted(t *testing.T) {
	const topic, limit = "t", 4
	v := peer.ID("v")
	h := testHaveSignals(topic, map[peer.ID]bool{v: true}, limit)
	h.graft(v, topic)
	for i := range 10 {
		h.idontwant(v, dontWant(strings.Repeat(string(rune('a'+i)), 32)))
	}
	if len(h.ids) != limit || len(h.order) != limit {
		t.Fatalf("%d IDs (%d in order) remembered, want %d", len(h.ids), len(h.order), limit)
	}
	if got := h.full.Load(); got != 10-limit {
		t.Fatalf("%d IDs counted as dropped, want %d", got, 10-limit)
	}
	// The newest are kept: the last ID's hold ends at once.
	if !h.wait(context.Background(), strings.Repeat("j", 32), "sender", time.Second, 0, nil) {
		t.Fatal("the newest signal was forgotten")
	}
	// Expired IDs make room without being counted.
	now := time.Now()
	h.now = func() time.Time { return now.Add(time.Hour) }
	h.idontwant(v, dontWant(strings.Repeat("z", 32)))
	if len(h.ids) != 1 || h.full.Load() != 10-limit {
		t.Fatalf("after expiry %d IDs remembered and %d counted, want 1 and %d", len(h.ids), h.full.Load(), 10-limit)
	}
}

func testHaveSignals(topic string, validators map[peer.ID]bool, limit int) *haveSignals {
	g := DefaultGossipParams()
	g.MaxHaveSignals = limit
	return newHaveSignals(topic, func(p peer.ID) bool { return validators[p] }, g, new(atomic.Uint64))
}

func dontWant(id string) *pb.ControlMessage {
	return &pb.ControlMessage{Idontwant: []*pb.ControlIDontWant{{MessageIDs: []string{id}}}}
}

func gossipMsg(topic string) *pb.Message { return &pb.Message{Topic: &topic} }

func TestTheForwardDelayIsTwoRoundTripsWithinItsBounds(t *testing.T) {
	g := DefaultGossipParams()
	tests := []struct {
		name string
		rtt  time.Duration
		want time.Duration
	}{
		{"no round trip measured: ForwardDelay", 0, g.ForwardDelay},
		{"a LAN: ForwardDelay", 2 * time.Millisecond, g.ForwardDelay},
		{"10ms links: two round trips", 20 * time.Millisecond, 40 * time.Millisecond},
		{"100ms round trips: 200ms", 100 * time.Millisecond, 200 * time.Millisecond},
		{"slow links stop at MaxForwardDelay", 2 * time.Second, g.MaxForwardDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.forwardDelay(1024, tt.rtt); got != tt.want {
				t.Fatalf("forwardDelay with %v round trips = %v, want %v", tt.rtt, got, tt.want)
			}
		})
	}
}

func TestAHoldLastsALinkForEveryRainTreeHopStillToGoAndARoundTripMore(t *testing.T) {
	g := DefaultGossipParams()
	tests := []struct {
		name string
		hops int
		rtt  time.Duration
		want time.Duration
	}{
		{"no round trip measured: ForwardDelay", 2, 0, g.ForwardDelay},
		{"from the last hop on 10ms links: a round trip", 0, 20 * time.Millisecond, 20 * time.Millisecond},
		{"one hop to go on 10ms links: three links", 1, 20 * time.Millisecond, 30 * time.Millisecond},
		{"from the last hop on 2ms links: the floor, ForwardDelay", 0, 4 * time.Millisecond, g.ForwardDelay},
		{"from the last hop on 50ms links: a round trip", 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{"more hops than two round trips cover: two round trips", 3, 20 * time.Millisecond, 40 * time.Millisecond},
		{"slow links stop at MaxForwardDelay", 1, 2 * time.Second, g.MaxForwardDelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.treeDelay(tt.hops, tt.rtt); got != tt.want {
				t.Fatalf("treeDelay(%d hops, %v round trips) = %v, want %v", tt.hops, tt.rtt, got, tt.want)
			}
		})
	}
}

func TestTheSignalsKeptPerMessageCoverTheLargestMesh(t *testing.T) {
	tests := []struct {
		name string
		dhi  int
		want int
	}{
		{"a default mesh keeps the floor of 64", DefaultGossipParams().Dhi, 64},
		{"a mesh of 100 keeps twice its bound", 100, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := DefaultGossipParams()
			g.Dhi = tt.dhi
			if got := entryPeers(g); got != tt.want {
				t.Fatalf("entryPeers with Dhi %d = %d, want %d", tt.dhi, got, tt.want)
			}
		})
	}
}
