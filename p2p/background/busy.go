package background

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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
// spares the copies held. A write that was already waiting for its turn
// when the notice came is held too once the turn comes, and passes the
// turn on: a validator pushes a block to the full nodes of its mesh one
// after another once its RainTree frames have left, so a push may wait
// its turn for a second or more, and most copies to a busy peer began to
// wait before it said so. The gossip wire is unchanged.
//
// A notice can only hold back what is written to its sender, for at most
// BusyHold from when it is heard, and is never a reason to drop a copy:
// only the sender's own IDONTWANT drops one. The notices heard are
// remembered per peer until they run out; they come only from connected
// peers within the direct-send rate (router.go), so the memory is
// bounded by the connections a node keeps. A write is held at most three
// BusyHolds from when it began to wait, however often its peer renews
// its notice. Notices go only to peers that list BusyProtocolID: an older
// node would take one for a malformed frame and penalise its sender.

// busyWrites is what peers said of themselves: until when each is busy.
type busyWrites struct {
	hold time.Duration // the longest a notice holds (a write: busyWriteHolds of them)

	mu      sync.Mutex
	peers   map[peer.ID]*busyPeer
	sweepAt int // the size at which the notices that ran out are swept

	heard, held atomic.Uint64
}

// busyPeer is one peer's notice.
type busyPeer struct {
	until time.Time
	// wake is closed, and replaced, when the peer declines a message: a
	// write held for it looks again.
	wake chan struct{}
}

// busySweep is the least size at which the notices that ran out are
// swept when another is heard; after a sweep, twice what is left.
const busySweep = 64

func newBusyWrites(hold time.Duration) *busyWrites {
	if hold <= 0 {
		return nil
	}
	return &busyWrites{hold: hold, peers: map[peer.ID]*busyPeer{}, sweepAt: busySweep}
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
	if len(b.peers) >= b.sweepAt {
		for q, e := range b.peers {
			if !now.Before(e.until) {
				delete(b.peers, q)
			}
		}
		b.sweepAt = max(busySweep, 2*len(b.peers))
	}
	e := b.peers[p]
	if e == nil {
		e = &busyPeer{wake: make(chan struct{})}
		b.peers[p] = e
	}
	if until.After(e.until) {
		e.until = until
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
	return len(b.peers) == 0
}

// declined wakes the writes held for p: it declined a message.
func (b *busyWrites) declined(p peer.ID) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.peers[p]; e != nil {
		close(e.wake)
		e.wake = make(chan struct{})
	}
}

// busyWriteHolds is how many holds a write may wait at most, however
// often its peer renews its notice: a full node renews it as each of its
// validators begins to send, and a block its validators bring is whole
// within AskHold (three holds at the defaults) of the first.
const busyWriteHolds = 3

// busyWait is one write's wait for its peer to be no longer busy.
type busyWait struct {
	b     *busyWrites
	p     peer.ID
	all   func() bool   // whether p has declined every message the write carries
	last  time.Time     // the write's deadline: busyWriteHolds holds from its start
	held  bool          // counted (busyWrites.held)
	asks  int           // how often it asked to be sent (clear.go)
	asked time.Duration // how long it waited for those answers, holding the turn
}

// wait starts the wait of a write to p, which p has declined whole when
// all reports so; nil when notices are not heeded.
func (b *busyWrites) wait(p peer.ID, all func() bool) *busyWait {
	if b == nil {
		return nil
	}
	return &busyWait{b: b, p: p, all: all, last: time.Now().Add(busyWriteHolds * b.hold)}
}

// left is how much longer the write is held (at most until its
// deadline; 0 or less: not held), and what wakes it early.
func (w *busyWait) left() (time.Duration, <-chan struct{}) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	e := w.b.peers[w.p]
	if e == nil {
		return 0, nil
	}
	until := e.until
	if until.After(w.last) {
		until = w.last
	}
	return time.Until(until), e.wake
}

// busy reports whether the write is held now: its peer's notice runs,
// the deadline has not passed, and the peer has not declined it all.
func (w *busyWait) busy() bool {
	if w == nil {
		return false
	}
	left, _ := w.left()
	return left > 0 && !w.all()
}

// hold counts the write as held, once.
func (w *busyWait) hold() {
	if !w.held {
		w.held = true
		w.b.held.Add(1)
	}
}

// await holds the write while it is busy: until its peer's notice runs
// out, the deadline passes, the peer has declined all it carries, or
// done is closed.
func (w *busyWait) await(done <-chan struct{}) {
	if w == nil || w.b.none() {
		return
	}
	for {
		left, wake := w.left()
		if left <= 0 || w.all() {
			return
		}
		w.hold()
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

// busyNotices sends a full node's notices: for each frame asks.go
// counts, one to every other peer of its mesh that lists
// BusyProtocolID, each on its own goroutine (a slow peer delays no other
// peer's notice), at most one at a time to a peer.
type busyNotices struct {
	hold  time.Duration
	kicks chan peer.ID // the peers whose frames began
	oneEach
}

// oneEach lets one frame at a time be on its way to a peer, and counts
// the frames sent and those dropped.
type oneEach struct {
	mu      sync.Mutex
	sending map[peer.ID]struct{}

	sent, dropped atomic.Uint64
}

// busyKicks is how many rounds of notices may wait for the one being
// sent; a frame that begins beyond that is counted and sends none.
const busyKicks = 4

func newBusyNotices(hold time.Duration) *busyNotices {
	return &busyNotices{hold: hold, kicks: make(chan peer.ID, busyKicks), oneEach: oneEach{sending: map[peer.ID]struct{}{}}}
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

// sendTimeout is how long a notice may take to leave: a quarter of the
// time it asks for, since one that arrives late holds little but copies
// that arrive later still.
func (n *busyNotices) sendTimeout() time.Duration { return n.hold / 4 }

// startSending reports whether a frame to p may start: none is on its
// way to p. A frame that may not is counted.
func (n *oneEach) startSending(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.sending[p]; ok {
		n.dropped.Add(1)
		return false
	}
	n.sending[p] = struct{}{}
	return true
}

func (n *oneEach) doneSending(p peer.ID, err error) {
	n.mu.Lock()
	delete(n.sending, p)
	n.mu.Unlock()
	if err != nil {
		n.dropped.Add(1)
	} else {
		n.sent.Add(1)
	}
}

// busyLoop sends the rounds of notices until the router closes.
func (r *Router) busyLoop(n *busyNotices) {
	frame, err := wire.EncodeBusy(n.hold)
	if err != nil { // BusyHold is validated: at least a millisecond
		r.log.Error("busy notices off", "err", err)
		return
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case from := <-n.kicks:
			r.tellBusy(n, from, frame)
		}
	}
}

// tellBusy sends frame to the peers of the mesh but from that list
// BusyProtocolID: an older node would take it for a malformed frame.
func (r *Router) tellBusy(n *busyNotices, from peer.ID, frame []byte) {
	heeds := r.supports(BusyProtocolID(r.cfg.NetworkID))
	for _, p := range r.have.meshPeers(nil) {
		if p == from || !heeds(p) {
			continue
		}
		if !n.startSending(p) {
			continue
		}
		r.wg.Go(func() {
			// Mesh peers are connected; one that left is not dialled.
			ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "busy notice"), n.sendTimeout())
			defer cancel()
			err := r.uc.Send(ctx, p, frame)
			if err != nil {
				r.log.Debug("busy notice not sent", "to", p, "err", err)
			}
			n.doneSending(p, err)
		})
	}
}

// advertiseBusy lists BusyProtocolID on a node that heeds busy notices,
// ClearProtocolID on one that answers asks to send, and RepairProtocolID
// on one that takes repairs. A stream opened on any is reset at once.
func (r *Router) advertiseBusy() {
	u := r.up.Load()
	if u != nil && u.busy != nil {
		r.host.SetStreamHandler(BusyProtocolID(r.cfg.NetworkID), func(s network.Stream) { _ = s.Reset() })
	}
	if u != nil && u.clearance != nil {
		r.host.SetStreamHandler(ClearProtocolID(r.cfg.NetworkID), func(s network.Stream) { _ = s.Reset() })
	}
	if r.takesRepairs() {
		r.host.SetStreamHandler(RepairProtocolID(r.cfg.NetworkID), func(s network.Stream) { _ = s.Reset() })
	}
}
