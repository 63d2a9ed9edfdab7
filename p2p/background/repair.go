package background

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Repairs from full nodes (GossipParams.RepairSlack).
//
// A validator below a silent RainTree head never gets a broadcast from
// the tree, and a silent head acknowledges, so nobody on the tree can
// tell. Its full nodes can: they know from the broadcast's plan at which
// hop each validator of their mesh gets it, and a validator that has it
// says so (an IDONTWANT, or a copy) about a link later (release.go). So a
// full node holding a small message from a validator sends a copy, on
// background unicast, to each validator of its mesh that has not said so
// by a link for each hop it gets the message after the sender, plus the
// slack (RepairSlack, at least half a link), after the copy came. That is
// about a link after the tree should have reached it, where the hold
// (forward.go) let pubsub push it a round trip or more later. The
// validator delivers the copy and publishes it on gossip, which tells its
// mesh it has it; it starts nothing on RainTree (the validators below it
// have full nodes of their own). Pubsub's own copy of the message to a
// validator repaired is then left out of its RPCs (uplink.go), so the
// repair replaces that copy rather than adding to it; the hold, and what
// pubsub forwards to the other full nodes of the mesh, are unchanged.
//
// A validator whose word comes later than the slack gets a copy it did
// not need, at most one per full node of its mesh per message: the slack
// is where the copies and the silent validators' tail meet (ADR 0002,
// fourteenth session).
//
// What a hostile peer can do with it: a validator takes repairs only
// from the peers of its mesh (at most Dhi, scored by gossipsub) and
// within the direct-send rate, and checks each as any broadcast; a
// repair costs it a copy it may already have, as pubsub's own copies do,
// and starts nothing. A full node repairs only validators of its mesh
// that list RepairProtocolID, at most once each per message, never for a
// message a full node sent it or a large one, and only on the plan of
// the validator set, which no peer chooses.

// repairs are the repairs one held message may send.
type repairs struct {
	due  []dueRepair // by time
	send func(peer.ID)
	t    *time.Timer
}

// dueRepair is a validator to repair at a time, if still silent then.
type dueRepair struct {
	to peer.ID
	at time.Time
}

// timer is a channel that fires when the next repair is due, nil when
// none is left.
func (rp *repairs) timer() <-chan time.Time {
	if len(rp.due) == 0 {
		return nil
	}
	d := time.Until(rp.due[0].at)
	if rp.t == nil {
		rp.t = time.NewTimer(d)
	} else {
		rp.t.Reset(d)
	}
	return rp.t.C
}

func (rp *repairs) stop() {
	if rp.t != nil {
		rp.t.Stop()
	}
}

// fire sends the repairs due at now to the validators silent reports
// still silent.
func (rp *repairs) fire(now time.Time, silent func(peer.ID) bool) {
	for len(rp.due) > 0 && !rp.due[0].at.After(now) {
		v := rp.due[0].to
		rp.due = rp.due[1:]
		if silent(v) {
			rp.send(v)
		}
	}
}

// Bounds on a full node's repairs, below what a validator takes from one
// peer (DefaultDirectRate, DefaultDirectBurst), whose busy notices, asks
// and submissions share that budget: a repair over them is not sent, and
// pubsub's own copy goes instead.
const (
	repairsPerSecond   = DefaultDirectRate / 2 // to one validator
	repairBurst        = 20
	maxRepairsInFlight = 64 // sends under way, over every validator
)

// repairsFor plans the repairs of small message m, which validator from
// sent this full node at start and pubsub may forward from holdEnd, rtt
// being the round trip to the mesh's validators: nil when there is
// nothing to plan (repairs off, a large message, no round trip measured
// yet, a plan it cannot read, no validator of the mesh that takes
// repairs).
func (r *Router) repairsFor(m *wire.Message, from peer.ID, rtt time.Duration, start, holdEnd time.Time) *repairs {
	g := r.cfg.Gossip
	if g.RepairSlack <= 0 || r.cfg.HopOf == nil || g.large(len(m.Raw)) || rtt <= 0 {
		return nil
	}
	fromHop, ok := r.cfg.HopOf(m, from)
	if !ok {
		return nil
	}
	link := rtt / 2
	hopOf := func(v peer.ID) (int, bool) { return r.cfg.HopOf(m, v) }
	due := repairTimes(r.have.meshValidators(), from, r.supports(RepairProtocolID(r.cfg.NetworkID)), hopOf,
		fromHop, link, max(g.RepairSlack, link/2), start)
	if len(due) == 0 {
		return nil
	}
	var frame []byte // encoded at the first repair
	within, id := max(rtt, g.ForwardDelay), r.gossipID(m)
	strip := holdEnd.Add(g.MaxForwardDelay) // pubsub may forward the message until about then
	return &repairs{due: due, send: func(v peer.ID) {
		if frame == nil {
			var err error
			if frame, err = wire.EncodeRepair(m.Raw); err != nil {
				return
			}
		}
		r.repair(v, frame, id, within, strip)
	}}
}

// repairTimes are the times at which each validator of mesh that takes
// repairs, from aside, is due its repair unless it has said it has the
// message: a link for each RainTree hop it gets it after from (at hop
// fromHop; hopOf reads the plan), and the slack, after start; soonest
// first, in mesh order among equals.
func repairTimes(mesh []peer.ID, from peer.ID, takes func(peer.ID) bool, hopOf func(peer.ID) (int, bool),
	fromHop int, link, slack time.Duration, start time.Time) []dueRepair {
	var due []dueRepair
	for _, v := range mesh {
		if v == from || !takes(v) {
			continue
		}
		if hop, ok := hopOf(v); ok {
			due = append(due, dueRepair{to: v, at: start.Add(time.Duration(max(0, hop-fromHop))*link + slack)})
		}
	}
	slices.SortStableFunc(due, func(a, b dueRepair) int { return a.at.Compare(b.at) })
	return due
}

// repair sends frame, the repair of message id, to validator v on a
// goroutine of its own, within d and without a dial (v is in the mesh),
// unless v's repair budget or the sends under way are used up (counted);
// once it went, pubsub's copy of id to v is left out until strip.
func (r *Router) repair(v peer.ID, frame []byte, id string, d time.Duration, strip time.Time) {
	if !r.repairBudget.allow(v) {
		r.c.repairsSkipped.Add(1)
		return
	}
	select {
	case r.repairSlots <- struct{}{}:
	default:
		r.c.repairsSkipped.Add(1)
		return
	}
	r.mu.Lock() // Close waits for r.wg once the state says closed
	defer r.mu.Unlock()
	if r.state == stateClosed {
		<-r.repairSlots
		return
	}
	r.wg.Go(func() {
		defer func() { <-r.repairSlots }()
		if !r.sendRepair(v, frame, d) {
			return
		}
		if u := r.up.Load(); u != nil { // pubsub's copy to v would be a second one
			u.repairedWith(v, id, strip)
		}
	})
}

// sendRepair sends frame, a repair, to validator v within d, without a
// dial, and reports whether it went.
func (r *Router) sendRepair(v peer.ID, frame []byte, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "repair"), d)
	defer cancel()
	if err := r.uc.Send(ctx, v, frame); err != nil {
		r.c.repairErrors.Add(1)
		r.log.Debug("repair not sent", "to", v, "err", err)
		return false
	}
	r.c.repairsSent.Add(1)
	return true
}

// onRepair takes a full node's repair of m: a validator of a lazy network
// delivers it (the handler publishes it on gossip) if from is a peer of
// its mesh; anything else is dropped and counted.
func (r *Router) onRepair(from peer.ID, m *wire.Message) {
	if !r.cfg.lazy() || !r.IsMeshPeer(from) {
		r.c.repairsRefused.Add(1)
		return
	}
	r.c.repairsTaken.Add(1)
	r.deliver(from, m, ViaRepair, wire.Handover{})
}

// takesRepairs reports whether this node lists RepairProtocolID: a
// validator of a lazy network whose host has a connection manager, which
// is where pubsub marks the mesh (IsMeshPeer); without one it would
// refuse every repair.
func (r *Router) takesRepairs() bool {
	switch r.host.ConnManager().(type) {
	case *connmgr.NullConnMgr, connmgr.NullConnMgr:
		return false
	}
	return r.cfg.lazy()
}

// RepairProtocolID names what a validator that takes repairs (repair.go)
// lists in identify. No stream on it carries anything: a full node
// repairs, on the background unicast protocol, only validators that list
// it, since one of an older release would take a repair for a whole-ring
// submission and start it on RainTree.
func RepairProtocolID(networkID string) protocol.ID {
	return protocol.ID("/rainp2p/" + networkID + "/background/repair/1.0.0")
}
