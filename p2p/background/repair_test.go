package background

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// A hold repairs each validator still silent when its time comes, and
// none that has spoken by then or once every validator has (virtual
// time).
func TestAHoldRepairsOnlyTheValidatorsStillSilentWhenDue(t *testing.T) {
	const topic, from = "t", peer.ID("sender")
	id := strings.Repeat("m", 32)
	v1, v2, v3 := peer.ID("v1"), peer.ID("v2"), peer.ID("v3")
	for _, tt := range []struct {
		name  string
		spoke map[peer.ID]time.Duration // when each validator says it has the message
		want  []peer.ID                 // repaired, in order
	}{
		{"every validator silent is repaired at its time", nil, []peer.ID{v1, v2, v3}},
		{"a validator that spoke before its time is not repaired", map[peer.ID]time.Duration{v1: 5 * time.Millisecond}, []peer.ID{v2, v3}},
		{"a validator that speaks after its time is repaired all the same", map[peer.ID]time.Duration{v2: 25 * time.Millisecond}, []peer.ID{v1, v2, v3}},
		{"once every validator has spoken nothing is repaired", map[peer.ID]time.Duration{v1: time.Millisecond, v2: time.Millisecond, v3: time.Millisecond}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := testHaveSignals(topic, map[peer.ID]bool{v1: true, v2: true, v3: true}, 16)
				for _, p := range []peer.ID{v1, v2, v3} {
					h.graft(p, topic)
				}
				start := time.Now()
				var got []peer.ID
				var at []time.Duration
				rep := &repairs{
					due:  []dueRepair{{v1, start.Add(10 * time.Millisecond)}, {v2, start.Add(20 * time.Millisecond)}, {v3, start.Add(30 * time.Millisecond)}},
					send: func(p peer.ID) { got, at = append(got, p), append(at, time.Since(start)) },
				}
				for p, d := range tt.spoke {
					time.AfterFunc(d, func() { h.idontwant(p, dontWant(id)) })
				}
				h.wait(context.Background(), id, from, time.Second, 0, rep)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("repaired %v, want %v", got, tt.want)
				}
				for i, p := range got {
					if want := map[peer.ID]time.Duration{v1: 10 * time.Millisecond, v2: 20 * time.Millisecond, v3: 30 * time.Millisecond}[p]; at[i] != want {
						t.Fatalf("%s repaired at %v, want %v", p, at[i], want)
					}
				}
			})
		})
	}
}

// A validator is due its repair a link for each hop it gets the message
// after the sender, and the slack, after the copy came; the sender, and
// validators that do not take repairs or whose hop is unknown, never.
func TestARepairIsDueALinkPerHopAfterTheSenderAndTheSlack(t *testing.T) {
	const link, slack = 10 * time.Millisecond, 5 * time.Millisecond
	start := time.Unix(1000, 0)
	from, v1, v2, v3, old, unknown := peer.ID("from"), peer.ID("v1"), peer.ID("v2"), peer.ID("v3"), peer.ID("old"), peer.ID("unknown")
	hops := map[peer.ID]int{from: 1, v1: 1, v2: 2, v3: 3, old: 2}
	hopOf := func(p peer.ID) (int, bool) { h, ok := hops[p]; return h, ok }
	takes := func(p peer.ID) bool { return p != old }
	for _, tt := range []struct {
		name    string
		mesh    []peer.ID
		fromHop int
		want    map[peer.ID]time.Duration
	}{
		{"a validator at the sender's hop is due after the slack", []peer.ID{from, v1}, 1, map[peer.ID]time.Duration{v1: slack}},
		{"a link for each hop after the sender's", []peer.ID{v3, v2}, 1, map[peer.ID]time.Duration{v2: link + slack, v3: 2*link + slack}},
		{"a validator before the sender's hop is due after the slack", []peer.ID{v1}, 3, map[peer.ID]time.Duration{v1: slack}},
		{"one that does not list the protocol, or whose hop is unknown, is never due", []peer.ID{old, unknown, v2}, 1, map[peer.ID]time.Duration{v2: link + slack}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			due := repairTimes(tt.mesh, from, takes, hopOf, tt.fromHop, link, slack, start)
			if len(due) != len(tt.want) {
				t.Fatalf("due %v, want %v", due, tt.want)
			}
			for i, d := range due {
				if want, ok := tt.want[d.to]; !ok || d.at.Sub(start) != want {
					t.Fatalf("%s due after %v, want %v", d.to, d.at.Sub(start), want)
				}
				if i > 0 && d.at.Before(due[i-1].at) {
					t.Fatalf("due %v, not soonest first", due)
				}
			}
		})
	}
}

// On real routers: a full node holding a validator's small message
// repairs the validator of its mesh that has not said it has it once the
// plan says it should have, long before its hold ends, and pubsub's own
// copy to that validator is then left out. A repair from a peer outside
// the validator's mesh is refused and counted.
func TestAFullNodeRepairsAValidatorTheTreeShouldHaveReached(t *testing.T) {
	const network, hold = "repair", 1200 * time.Millisecond
	cfg := holdingConfig(network, hold)
	cfg.Gossip.RepairSlack = 50 * time.Millisecond
	cfg.HopOf = func(*wire.Message, peer.ID) (int, bool) { return 1, true }
	vcfg := cfg
	vcfg.RainTreeValidator = true
	v := startNodeOn(t, newHostWithConnManager(t), vcfg)
	f := startNodeOn(t, newHostWithConnManager(t), cfg)
	g := startNodeOn(t, newHostWithConnManager(t), vcfg)
	for _, n := range []*node{v, f, g} {
		n.r.SetValidatorIDs(nil, []peer.ID{v.h.ID(), g.h.ID()})
	}
	connect(t, v.h, f.h)
	connect(t, f.h, g.h) // not v and g: g would advertise the message to v
	awaitMutualMesh(t, network, f, v, g)
	awaitListed(t, f.h, v.h.ID(), RepairProtocolID(network))
	eventually(t, 10*time.Second, "f's round trip to its validators", func() bool { return f.r.meshRTT() > 0 })

	msg := envelope(t, g, strings.Repeat("x", 2048)) // IDONTWANT needs 1 KiB
	start := time.Now()
	if err := g.r.Broadcast(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "v taking f's repair", func() bool {
		d := v.in.deliveries(msg)
		return len(d) == 1 && d[0].via == ViaRepair && d[0].from == f.h.ID()
	})
	if took := time.Since(start); took >= hold {
		t.Fatalf("the repair came %v after the broadcast, not before f's hold of %v ended", took, hold)
	}
	if s, fs := v.r.Stats(), f.r.Stats(); s.RepairsTaken != 1 || fs.RepairsSent != 1 || fs.RepairErrors != 0 {
		t.Fatalf("v took %d repairs, f sent %d (%d failed); want 1, 1, 0", s.RepairsTaken, fs.RepairsSent, fs.RepairErrors)
	}
	// Once f's hold ends, pubsub's copy to v is left out (v may get one
	// from g, which advertises the message to the validators it knows;
	// not from f).
	eventually(t, 10*time.Second, "f leaving pubsub's copy to v out", func() bool { return f.r.Stats().CopiesDeclined == 1 })
	for _, d := range v.in.deliveries(msg) {
		if d.via == ViaGossip && d.from == f.h.ID() {
			t.Fatal("v got pubsub's copy from f as well")
		}
	}

	// g, a validator, is no peer of v's mesh.
	connect(t, g.h, v.h)
	frame, err := wire.EncodeRepair(envelope(t, g, "not from the mesh").Raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.r.uc.Send(ctx, v.h.ID(), frame); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "v refusing g's repair", func() bool { return v.r.Stats().RepairsRefused == 1 })
	if s := v.r.Stats(); s.RepairsTaken != 1 {
		t.Fatalf("v took %d repairs, want only f's", s.RepairsTaken)
	}
}
