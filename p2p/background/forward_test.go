package background

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// A full node f gets a message from g while its mesh peer v, a validator,
// gets it at about the same time from RainTree and republishes it.
// Forwarding at once sends v a copy it does not need; forwarding
// ForwardDelay later lets v's IDONTWANT arrive first, and v gets no copy
// from gossip at all. Only a message from a validator waits: one from a
// full node is already a delay behind RainTree.
//
// Where f should forward at once, v does not republish: its IDONTWANT
// would race f's copy, and either may win. That f did not hold the
// message is read from its Held counter instead.
func TestAFullNodeForwardsOnlyAfterItsValidatorsSaidTheyHaveIt(t *testing.T) {
	tests := []struct {
		name          string
		delay         time.Duration
		fromValidator bool // g is a validator, else a full node
		maxHeld       int
		wantCopy      bool
		wantFull      uint64 // messages forwarded at once for MaxHeldBytes
	}{
		{"forwarding at once sends the validator a copy", 0, true, DefaultMaxHeldBytes, true, 0},
		{"forwarding a validator's message after the delay sends it none", 250 * time.Millisecond, true, DefaultMaxHeldBytes, false, 0},
		{"a small message from a full node is forwarded at once", 250 * time.Millisecond, false, DefaultMaxHeldBytes, true, 0},
		{"a full node that holds too much already forwards at once", 250 * time.Millisecond, true, 1024, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := "forward"
			cfg := holdingConfig(network, tt.delay)
			cfg.Gossip.MaxHeldBytes = tt.maxHeld
			var asked atomic.Int32 // how often f asked how many RainTree hops remain
			cfg.HopsAfter = func(*wire.Message, peer.ID) (int, bool) { asked.Add(1); return 1, true }
			vcfg := cfg
			vcfg.RainTreeValidator = true
			gcfg, validators := cfg, 1
			if tt.fromValidator {
				gcfg, validators = vcfg, 2
			}
			v := startNodeOn(t, newHostWithConnManager(t), vcfg)
			f := startNodeOn(t, newHostWithConnManager(t), cfg)
			g := startNodeOn(t, newHostWithConnManager(t), gcfg)
			for _, n := range []*node{v, f, g} {
				n.r.SetValidatorIDs(nil, []peer.ID{v.h.ID(), g.h.ID()}[:validators])
			}
			connect(t, v.h, f.h)
			connect(t, f.h, g.h)
			awaitMutualMesh(t, network, f, v, g)

			msg := envelope(t, g, strings.Repeat("x", 2048)) // IDONTWANT needs 1 KiB
			if err := g.r.Broadcast(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "f getting the message", func() bool { return len(f.in.deliveries(msg)) == 1 })
			if tt.wantCopy {
				eventually(t, 5*time.Second, "v getting f's copy", func() bool {
					s := v.r.Stats()
					return s.DeliveredGossip+s.Duplicates == 1
				})
				s := f.r.Stats()
				if s.Held != 0 {
					t.Fatalf("f held %d messages, want none", s.Held)
				}
				if s.HeldFull != tt.wantFull {
					t.Fatalf("f forwarded %d messages at once for MaxHeldBytes, want %d", s.HeldFull, tt.wantFull)
				}
				if n := asked.Load(); n != 0 {
					t.Fatalf("f asked %d times how many RainTree hops remain for a message it does not hold", n)
				}
				return
			}
			if err := v.r.Republish(context.Background(), msg); err != nil { // as RainTree's delivery would
				t.Fatal(err)
			}
			// Absence cannot be awaited: wait out f's delay, then some.
			time.Sleep(tt.delay + 500*time.Millisecond)
			if s := v.r.Stats(); s.DeliveredGossip+s.Duplicates != 0 {
				t.Fatalf("v got copies from gossip: %+v", s)
			}
			if s := f.r.Stats(); s.DeliveredGossip != 1 || s.Held != 1 {
				t.Fatalf("f delivered %d times and held %d messages, want once each", s.DeliveredGossip, s.Held)
			}
			if n := asked.Load(); n != 1 {
				t.Fatalf("f asked %d times how many RainTree hops remain for the message it held, want once", n)
			}
		})
	}
}

func TestLargeMessagesWaitLongerBeforeForwardingAndFallingBack(t *testing.T) {
	g := DefaultGossipParams()
	tests := []struct {
		name              string
		size              int
		forward, fallback time.Duration
	}{
		{"a vote", 200, g.ForwardDelay, g.SubmitFallback},
		{"just below LargeBytes", g.LargeBytes - 1, g.ForwardDelay, g.SubmitFallback},
		{"a block", 1 << 20, g.LargeForwardDelay, g.LargeSubmitFallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := g.forwardDelay(tt.size, 0); got != tt.forward {
				t.Errorf("forwardDelay(%d) = %v, want %v", tt.size, got, tt.forward)
			}
			if got := g.submitFallback(tt.size); got != tt.fallback {
				t.Errorf("submitFallback(%d) = %v, want %v", tt.size, got, tt.fallback)
			}
		})
	}
}

// A full node f holds validator g's message for its forward delay, but
// only until v, the other validator in its mesh, says it has the message
// too: then x, a full node behind f, gets it without waiting out the delay,
// and v still gets no copy. Had v not spoken (below a silent validator in
// RainTree), f waits the whole delay and sends v its copy.
func TestAFullNodeStopsHoldingOnceItsValidatorsHaveTheMessage(t *testing.T) {
	tests := []struct {
		name      string
		republish bool // v gets the message from RainTree and says so
		wantEarly uint64
		wantCopy  bool
	}{
		{"the validators have it: released early", true, 1, false},
		{"a validator lacks it: held the whole delay, and it gets a copy", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network := "release"
			cfg := holdingConfig(network, 1200*time.Millisecond)
			vcfg := cfg
			vcfg.RainTreeValidator = true
			g := startNodeOn(t, newHostWithConnManager(t), vcfg)
			v := startNodeOn(t, newHostWithConnManager(t), vcfg)
			f := startNodeOn(t, newHostWithConnManager(t), cfg)
			x := startNodeOn(t, newHostWithConnManager(t), cfg)
			for _, n := range []*node{g, v, f, x} {
				n.r.SetValidatorIDs(nil, []peer.ID{g.h.ID(), v.h.ID()})
			}
			connect(t, g.h, f.h)
			connect(t, v.h, f.h)
			connect(t, x.h, f.h)
			awaitMutualMesh(t, network, f, g, v, x)

			msg := envelope(t, g, strings.Repeat("x", 2048)) // IDONTWANT needs 1 KiB
			if err := g.r.Republish(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "f getting the message", func() bool { return len(f.in.deliveries(msg)) == 1 })
			if tt.republish {
				if err := v.r.Republish(context.Background(), msg); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 5*time.Second, "x getting the message through f", func() bool { return len(x.in.deliveries(msg)) == 1 })
			if got := f.r.Stats().ReleasedEarly; got != tt.wantEarly {
				t.Fatalf("f released %d holds early, want %d", got, tt.wantEarly)
			}
			if tt.wantCopy {
				eventually(t, 5*time.Second, "v getting f's copy", func() bool { return len(v.in.deliveries(msg)) == 1 })
				return
			}
			// Absence cannot be awaited: wait out what is left of f's delay.
			time.Sleep(cfg.Gossip.ForwardDelay)
			if s := v.r.Stats(); s.DeliveredGossip+s.Duplicates != 0 {
				t.Fatalf("v got copies from gossip: %+v", s)
			}
		})
	}
}

// A full node pings the validators in its mesh, and holds a small message
// at most two of their median round trips (rtt.go).
func TestAFullNodesForwardDelayFollowsTheRoundTripsToItsValidators(t *testing.T) {
	network := "rtt"
	cfg := testConfig(network)
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.MaxForwardDelay = 290 * time.Millisecond // below 3 heartbeats
	vcfg := cfg
	vcfg.RainTreeValidator = true
	v := startNodeOn(t, newHostWithConnManager(t), vcfg)
	f := startNodeOn(t, newHostWithConnManager(t), cfg)
	for _, n := range []*node{v, f} {
		n.r.SetValidatorIDs(nil, []peer.ID{v.h.ID()})
	}
	connect(t, v.h, f.h)
	eventually(t, 10*time.Second, "f pinging v", func() bool { return f.h.Peerstore().LatencyEWMA(v.h.ID()) > 0 })
	if got := f.r.Stats().ForwardDelay; got != cfg.Gossip.ForwardDelay {
		t.Fatalf("forward delay %v on loopback, want the floor %v", got, cfg.Gossip.ForwardDelay)
	}
	if s := v.r.Stats(); s.ForwardDelay != 0 {
		t.Fatalf("a validator reports a forward delay of %v", s.ForwardDelay)
	}
	// As if v were 100ms away: the delay becomes 200ms.
	for range 200 {
		f.h.Peerstore().RecordLatency(v.h.ID(), 100*time.Millisecond)
	}
	if got := f.r.Stats().ForwardDelay; got < 180*time.Millisecond || got > 200*time.Millisecond {
		t.Fatalf("forward delay %v with 100ms round trips, want about 200ms", got)
	}
}

// holdingConfig is a lazy network's test config whose full nodes hold
// messages exactly delay, whatever the round trips. IDONTWANTs last 3
// heartbeats, counted in ticks: at least 1s at 500ms, past any delay used
// here even on a loaded machine.
func holdingConfig(network string, delay time.Duration) Config {
	cfg := testConfig(network)
	cfg.Gossip.LazyAmongValidators = true
	cfg.Gossip.HeartbeatInterval = 500 * time.Millisecond
	cfg.Gossip.ForwardDelay, cfg.Gossip.MaxForwardDelay, cfg.Gossip.LargeForwardDelay = delay, delay, delay
	return cfg
}

// awaitMutualMesh waits until f and each of peers hold each other in
// their gossip mesh.
func awaitMutualMesh(t *testing.T, network string, f *node, peers ...*node) {
	t.Helper()
	inMesh := func(of, p *node) bool { return of.h.ConnManager().IsProtected(p.h.ID(), meshTag(network)) }
	eventually(t, 10*time.Second, "f meshing with its peers", func() bool {
		for _, p := range peers {
			if !inMesh(f, p) || !inMesh(p, f) {
				return false
			}
		}
		return true
	})
}
