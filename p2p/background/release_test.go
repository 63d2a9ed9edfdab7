package background

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The bookkeeping behind early release, driven the way pubsub's tracer
// drives it: which signals end a hold, which are ignored, and how the
// memory of them stays bounded.
func TestAHoldEndsOnceEveryValidatorInTheMeshHasTheMessage(t *testing.T) {
	const topic = "t"
	id := func(c byte) string { return strings.Repeat(string(c), 32) }
	sender, v1, v2, fullNode, outsider := peer.ID("sender"), peer.ID("v1"), peer.ID("v2"), peer.ID("full"), peer.ID("outsider")
	validators := map[peer.ID]bool{sender: true, v1: true, v2: true, outsider: true}
	tests := []struct {
		name      string
		signal    func(h *haveSignals)
		wantEarly bool
	}{
		{"both validators said it before the message came", func(h *haveSignals) {
			h.note(id('a'), v1)
			h.note(id('a'), v2)
		}, true},
		{"one validator's silence keeps the hold", func(h *haveSignals) { h.note(id('a'), v1) }, false},
		{"a full node's word does not count", func(h *haveSignals) {
			h.idontwant(fullNode, dontWant(id('a')))
			h.idontwant(v1, dontWant(id('a')))
		}, false},
		{"a validator outside the mesh is not heard", func(h *haveSignals) {
			h.idontwant(outsider, dontWant(id('a')))
			h.idontwant(v1, dontWant(id('a')))
		}, false},
		{"an IDONTWANT and a duplicate both count", func(h *haveSignals) {
			h.idontwant(v1, dontWant(id('a')))
			h.duplicate(&pubsub.Message{ID: id('a'), ReceivedFrom: v2, Message: gossipMsg(topic)})
		}, true},
		{"an ID of another length is ignored", func(h *haveSignals) {
			h.idontwant(v1, dontWant(id('a')[:31]))
			h.idontwant(v2, dontWant(id('a')))
		}, false},
		{"a pruned validator is no longer waited for", func(h *haveSignals) {
			h.prune(v2, topic)
			h.idontwant(v1, dontWant(id('a')))
		}, true},
		{"a disconnected validator is no longer waited for", func(h *haveSignals) {
			h.gone(v2)
			h.idontwant(v1, dontWant(id('a')))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHaveSignals(topic, validators, 16)
			for _, p := range []peer.ID{sender, v1, v2, fullNode} {
				h.graft(p, topic)
			}
			tt.signal(h)
			// The sender has the message: it is never waited for.
			if early := h.wait(context.Background(), id('a'), sender, 50*time.Millisecond, 0); early != tt.wantEarly {
				t.Fatalf("released early: %v, want %v", early, tt.wantEarly)
			}
		})
	}
	t.Run("a signal during the hold ends it", func(t *testing.T) {
		h := testHaveSignals(topic, validators, 16)
		h.graft(v1, topic)
		early := make(chan bool)
		go func() {
			got := h.wait(context.Background(), id('a'), sender, time.Hour, 0)
			early <- got
		}()
		// wait registers before it blocks; signal until it has.
		for {
			h.idontwant(v1, dontWant(id('a')))
			select {
			case got := <-early:
				if !got {
					t.Fatal("hold not released early")
				}
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	t.Run("a cancelled hold returns", func(t *testing.T) {
		h := testHaveSignals(topic, validators, 16)
		h.graft(v1, topic)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if h.wait(ctx, id('a'), sender, time.Hour, 0) {
			t.Fatal("released early without a signal")
		}
	})
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
	if !h.wait(context.Background(), strings.Repeat("j", 32), "sender", time.Second, 0) {
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
