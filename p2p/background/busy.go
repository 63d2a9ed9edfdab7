package background

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Busy notices (GossipParams.BusyHold).
//
// Every validator in a full node's mesh pushes it a block as soon as it
// has the block itself, and the validators have it at different times,
// over seconds. Two or three copies then shared the full node's
// downlink, none was whole for a second or more, and none could be
// declined: a node says IDONTWANT only once a copy has arrived whole. So
// a full node that begins to receive a block from a validator (a frame
// asks.go counts: large, from a validator, at most once every two
// AskHolds per validator) tells the other peers of its mesh it is busy,
// over background unicast. A node told so holds its large gossip writes
// to that peer, without holding its turn (uplink.go), until the notice
// runs out or the peer has declined every message they carry: the copy
// under way arrives at the downlink's whole rate, and its IDONTWANT
// spares the copies held. The gossip wire is unchanged.
//
// A notice can only hold back what is written to its sender, for at most
// BusyHold from when it is heard, and is never a reason to drop a copy:
// only the sender's own IDONTWANT drops one. The notices heard are
// remembered per peer until they run out; they come only from connected
// peers within the direct-send rate (router.go), so the memory is
// bounded by the connections a node keeps.

// busyWrites is what peers said of themselves: until when each is busy.
type busyWrites struct {
	hold time.Duration // the longest a notice holds

	mu    sync.Mutex
	until map[peer.ID]time.Time
	// declines is closed, and replaced, when a peer declines a message:
	// a write held for its peer looks again.
	declines chan struct{}

	heard, held atomic.Uint64
}

// busySweep is the size past which the notices that ran out are swept
// when another is heard.
const busySweep = 64

func newBusyWrites(hold time.Duration) *busyWrites {
	if hold <= 0 {
		return nil
	}
	return &busyWrites{hold: hold, until: map[peer.ID]time.Time{}, declines: make(chan struct{})}
}

// notice notes that p said at now it is busy for d, capped at hold; a
// shorter notice does not shorten an earlier one.
func (b *busyWrites) notice(p peer.ID, d time.Duration, now time.Time) {
	if b == nil {
		return
	}
	b.heard.Add(1)
	until := now.Add(min(d, b.hold))
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.until) >= busySweep {
		for q, t := range b.until {
			if !now.Before(t) {
				delete(b.until, q)
			}
		}
	}
	if until.After(b.until[p]) {
		b.until[p] = until
	}
}

// none reports whether no peer's notice is remembered (nor heeded: b is
// nil), so no write can be held.
func (b *busyWrites) none() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.until) == 0
}

// declined wakes the writes held: a peer declined a message.
func (b *busyWrites) declined() {
	if b == nil {
		return
	}
	b.mu.Lock()
	close(b.declines)
	b.declines = make(chan struct{})
	b.mu.Unlock()
}

// await holds a write to p while p is busy: until p's notice runs out,
// all reports that p has declined everything the write carries, or done
// is closed.
func (b *busyWrites) await(p peer.ID, all func() bool, done <-chan struct{}) {
	if b == nil {
		return
	}
	for counted := false; ; counted = true {
		b.mu.Lock()
		until, wake := b.until[p], b.declines
		b.mu.Unlock()
		left := time.Until(until)
		if left <= 0 || all() {
			return
		}
		if !counted {
			b.held.Add(1)
		}
		t := time.NewTimer(left)
		select {
		case <-t.C:
		case <-wake:
		case <-done:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// busyNotices sends a full node's notices: one round, to every other
// peer of its mesh, for each frame asks.go counts.
type busyNotices struct {
	hold  time.Duration
	kicks chan peer.ID // the peers whose frames began

	sent, dropped atomic.Uint64
}

// busyKicks is how many rounds of notices may wait for the one being
// sent; a frame that begins beyond that is counted and sends none.
const busyKicks = 4

func newBusyNotices(hold time.Duration) *busyNotices {
	return &busyNotices{hold: hold, kicks: make(chan peer.ID, busyKicks)}
}

// began asks for a round of notices for a frame from p. It never blocks:
// it is called while a stream is read.
func (n *busyNotices) began(p peer.ID) {
	select {
	case n.kicks <- p:
	default:
		n.dropped.Add(1)
	}
}

// busyLoop sends the rounds of notices until the router closes.
func (r *Router) busyLoop() {
	n := r.busy
	frame, err := wire.EncodeBusy(n.hold)
	if err != nil {
		r.log.Error("busy notices off", "err", err)
		return
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case from := <-n.kicks:
			r.tellBusy(from, frame)
		}
	}
}

// tellBusy sends frame to the peers of the mesh but from, each send
// within the notice's own time: a notice that comes later holds little.
func (r *Router) tellBusy(from peer.ID, frame []byte) {
	for _, p := range r.have.meshPeers() {
		if p == from {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.busy.hold)
		err := r.uc.Send(ctx, p, frame)
		cancel()
		if err != nil {
			r.busy.dropped.Add(1)
			r.log.Debug("busy notice not sent", "to", p, "err", err)
			continue
		}
		r.busy.sent.Add(1)
	}
}
