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

// Asks to send (GossipParams.ClearWait).
//
// A busy notice (busy.go) leaves once a copy has begun to arrive, so it
// cannot hold the copies that begin within a link of it, and those are
// most of a late full node's: RainTree frees its validators' uplinks at
// the same copy-times, so three or four validators that waited for their
// turns began to push the block to one full node within milliseconds,
// and all of them shared its downlink for seconds. So a node asks a peer
// that lists ClearProtocolID before it writes it a large gossip frame,
// holding its turn for at most ClearWait, and writes only when the peer
// clears it. A node clears one validator at a time, and beside it one
// peer outside the set (full nodes push blocks to each other too), and
// answers any other ask with a busy notice, which holds that write as a
// notice always does; while a validator's block arrives (a frame asks.go
// counts), it answers every ask so. The copy under way arrives at the
// downlink's whole rate, and its IDONTWANT spares the copies held. A
// validator answers too: the full nodes' pushes of a block it is still
// receiving on RainTree wait instead of sharing its downlink with the
// tree. The gossip wire is unchanged, and an ask only delays a write: a
// peer that does not answer in time is written to as before, and asked
// nothing for a while.
//
// What a hostile peer can do with it:
//   - a node that is always busy holds only the writes to itself,
//     within the three BusyHolds a notice may hold a write;
//   - a write waits for answers at most one ClearWait in all, holding
//     its turn; a node that does not answer, or answers after half of
//     it once the ask was written, is then not asked for askMute;
//   - a validator cleared holds that node's other validators for at
//     most one ClearWait until its frame begins and, after, until the
//     frame has arrived, one BusyHold at most, and is then let through,
//     not cleared, for two BusyHolds (three if it sent nothing): no peer
//     holds a clearance more than about half the time, whatever it
//     sends;
//   - a peer outside the set holds, by the same rules, only the
//     clearance for peers outside the set, and only if it is in this
//     node's mesh: it can hold back only other full nodes' copies.
//
// Each ask is a unicast frame under the direct-send rate, each answer
// is sent on its own goroutine, at most one at a time to a peer, and
// each write asks at most maxAsksPerWrite times.

// maxAsksPerWrite bounds the asks of one write: after them it goes once
// its peer's notice runs out, as an unasked write does.
const maxAsksPerWrite = 4

// askMute is how long a peer that did not answer an ask in time is not
// asked: its writes go as they did before asks.
const askMute = time.Minute

// deadlines remembers, per peer, until when something lasts (a mute, a
// bar); the entries that ran out are swept once there are busySweep.
type deadlines map[peer.ID]time.Time

// set gives p the deadline until; now sweeps the ones that ran out.
func (d deadlines) set(p peer.ID, until, now time.Time) {
	if len(d) >= busySweep {
		for q, t := range d {
			if !now.Before(t) {
				delete(d, q)
			}
		}
	}
	d[p] = until
}

// on reports whether p's deadline is still ahead at now.
func (d deadlines) on(p peer.ID, now time.Time) bool { return now.Before(d[p]) }

// clearAsks are this node's asks, as a writer.
type clearAsks struct {
	wait     time.Duration
	supports func(peer.ID) bool                           // the peer lists ClearProtocolID
	send     func(context.Context, peer.ID, []byte) error // over background unicast

	mu      sync.Mutex
	pending map[peer.ID]chan bool
	quiet   deadlines // muted peers: not asked until then
	unsent  deadlines // peers an ask could not be written to lately

	asked, cleared, refused, unanswered, muted atomic.Uint64
}

func newClearAsks(wait time.Duration, supports func(peer.ID) bool, send func(context.Context, peer.ID, []byte) error) *clearAsks {
	if wait <= 0 {
		return nil
	}
	return &clearAsks{wait: wait, supports: supports, send: send,
		pending: map[peer.ID]chan bool{}, quiet: deadlines{}, unsent: deadlines{}}
}

// ask asks p whether a large write may go now and waits for the answer,
// at most wait and at most budget (what is left of the write's). It
// reports false when p said it is busy (the notice is heeded by then) or
// done is closed; a peer that does not take asks, is muted, is already
// being asked, or does not answer in time is written to. The peer is
// muted when it had its chance and missed it: its stream failed, or it
// left more than half of wait, counted from when the ask was written,
// without an answer (an honest answer takes a round trip, and a late one
// holds the turn). An ask that could not be written in time (it may
// have queued behind this node's own frames to the peer) is held
// against the peer only the second time within askMute.
func (a *clearAsks) ask(p peer.ID, budget time.Duration, done <-chan struct{}) bool {
	if a == nil || budget <= 0 || !a.supports(p) {
		return true
	}
	answer, ok := a.begin(p, time.Now())
	if !ok {
		return true
	}
	defer a.end(p)
	a.asked.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), min(a.wait, budget))
	defer cancel()
	if err := a.send(ctx, p, wire.EncodeAskToSend()); err != nil {
		a.unanswered.Add(1)
		if ctx.Err() == nil || a.unsentAgain(p) { // the stream failed, or twice no room
			a.mute(p)
		}
		return true
	}
	sent := time.Now()
	late := func() bool { return time.Since(sent) > a.wait/2 }
	select {
	case clear := <-answer:
		if clear {
			a.cleared.Add(1)
		} else {
			a.refused.Add(1)
		}
		if late() {
			a.mute(p)
		}
		return clear
	case <-ctx.Done():
		a.unanswered.Add(1)
		if late() {
			a.mute(p)
		}
		return true
	case <-done:
		return false
	}
}

// begin registers an ask to p at now, unless p is muted or being asked.
func (a *clearAsks) begin(p peer.ID, now time.Time) (chan bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pending[p]; ok || a.quiet.on(p, now) {
		return nil, false
	}
	ch := make(chan bool, 1)
	a.pending[p] = ch
	return ch, true
}

func (a *clearAsks) end(p peer.ID) {
	a.mu.Lock()
	delete(a.pending, p)
	a.mu.Unlock()
}

// unsentAgain notes that an ask could not be written to p in time, and
// reports whether one could not before, within askMute: the time may run
// out behind this node's own frames to p once in a while, but a peer
// that does not read its stream runs it out every time.
func (a *clearAsks) unsentAgain(p peer.ID) bool {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unsent.on(p, now) {
		return true
	}
	a.unsent.set(p, now.Add(askMute), now)
	return false
}

// mute stops asking p for askMute: it did not answer in time, or took
// more than half of it. The muted peers are swept once there are 64.
func (a *clearAsks) mute(p peer.ID) {
	a.muted.Add(1)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.quiet.set(p, now.Add(askMute), now)
}

// answered hands p's answer to the ask waiting for it, if any: clear, or
// a busy notice (heeded before this is called).
func (a *clearAsks) answered(p peer.ID, clear bool) {
	if a == nil {
		return
	}
	a.mu.Lock()
	ch := a.pending[p]
	a.mu.Unlock()
	if ch != nil {
		select {
		case ch <- clear:
		default:
		}
	}
}

// clearance is a node's answers to asks: one validator at a time is
// cleared to send, and beside it one other peer, which only validators
// may pass.
type clearance struct {
	ttl       time.Duration        // how long a clearance waits for its frame (ClearWait)
	hold      time.Duration        // BusyHold: how long a begun frame keeps it, and what a refusal asks
	trusted   func(peer.ID) bool   // the validators
	eligible  func(peer.ID) bool   // who else may hold a clearance: this node's mesh peers
	receiving func(time.Time) bool // a counted frame is arriving (asks.go)

	mu         sync.Mutex
	val, other slot
	barred     deadlines // after a clearance: let through, not cleared, until then

	answers oneEach // the answers on their way

	clears, refusals atomic.Uint64
}

// slot is one clearance: whom, until when, and whether its frame began.
type slot struct {
	to    peer.ID
	until time.Time
	used  bool
}

func newClearance(ttl, hold time.Duration, trusted, eligible func(peer.ID) bool, receiving func(time.Time) bool) *clearance {
	return &clearance{ttl: ttl, hold: hold, trusted: trusted, eligible: eligible, receiving: receiving,
		barred: deadlines{}, answers: oneEach{sending: map[peer.ID]struct{}{}}}
}

// After a clearance ends, its peer is let through without one for this
// many holds if its frame began, and for barUnused holds if it sent
// nothing: no peer holds a clearance more than about half the time,
// whatever it sends.
const (
	barUsed   = 2
	barUnused = busyWriteHolds
)

// answer decides p's ask at now: clear, or busy for how long. A
// validator waits only for another validator's clearance; anyone else
// also for any other peer's.
func (c *clearance) answer(p peer.ID, now time.Time) (bool, time.Duration) {
	if c.receiving(now) {
		c.refusals.Add(1)
		return false, c.hold
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.settle(&c.val, now)
	c.settle(&c.other, now)
	mine, ahead := &c.val, []*slot{&c.val}
	if !c.trusted(p) {
		mine, ahead = &c.other, []*slot{&c.val, &c.other}
	}
	for _, s := range ahead {
		if s.to != "" && s.to != p {
			c.refusals.Add(1)
			// Rounded up: notices count whole milliseconds, and one that
			// ran out a little early would bring the ask back too soon.
			return false, (s.until.Sub(now) + time.Millisecond - 1).Truncate(time.Millisecond)
		}
	}
	c.clears.Add(1)
	if mine.to != p && !c.barred.on(p, now) && (mine == &c.val || c.eligible(p)) {
		*mine = slot{to: p, until: now.Add(c.ttl)}
	}
	return true, 0
}

// release ends p's clearance at now if its frame has not begun: the
// answer that cleared it was not sent. p is barred as for a clearance it
// did not use: a peer whose answers can never be sent (it stalls every
// stream) would otherwise take the clearance again with its next ask,
// and hold it nearly all the time.
func (c *clearance) release(p peer.ID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range []*slot{&c.val, &c.other} {
		if s.to == p && !s.used {
			*s = slot{}
			c.barred.set(p, now.Add(barUnused*c.hold), now)
		}
	}
}

// settle ends a clearance that ran out, and bars its peer from the next
// for a while.
func (c *clearance) settle(s *slot, now time.Time) {
	if s.to == "" || now.Before(s.until) {
		return
	}
	bar := barUnused
	if s.used {
		bar = barUsed
	}
	c.barred.set(s.to, s.until.Add(time.Duration(bar)*c.hold), now)
	*s = slot{}
}

// began notes that a large frame from p began at now: its clearance is
// used, and keeps the others out while the frame arrives, for at most
// hold.
func (c *clearance) began(p peer.ID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range []*slot{&c.val, &c.other} {
		if s.to == p && !s.used {
			s.used, s.until = true, now.Add(c.hold)
		}
	}
}

// ended notes that a large frame from p was read whole at now, or its
// stream ended first: its clearance, used, ends there and then, rather
// than a hold after the frame began, so the next validator's copy need
// not wait for a block already here. (A peer with two large frames
// arriving at once, one on RainTree, loses its clearance with the first
// to end, which only lets the next copy start sooner.)
func (c *clearance) ended(p peer.ID, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range []*slot{&c.val, &c.other} {
		if s.to == p && s.used && now.Before(s.until) {
			s.until = now
		}
	}
}

// onAsk answers p's ask, on its own goroutine: a clearance, or a busy
// notice. An ask from a peer that an answer is still on its way to is
// not answered, and counted: the ask then runs out, and the write goes.
// A clearance whose answer could not be sent is released.
func (r *Router) onAsk(c *clearance, p peer.ID) {
	if c == nil {
		return
	}
	r.mu.Lock() // Close waits for r.wg once the state says closed
	defer r.mu.Unlock()
	if r.state == stateClosed || !c.answers.startSending(p) {
		return
	}
	clear, d := c.answer(p, time.Now())
	frame := wire.EncodeClearToSend()
	if !clear {
		var err error
		if frame, err = wire.EncodeBusy(d); err != nil { // d is at least a millisecond
			c.answers.doneSending(p, err)
			return
		}
	}
	r.wg.Go(func() {
		// The asker was connected a moment ago; one that left is not dialled.
		ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "answer to an ask"), c.ttl)
		defer cancel()
		err := r.uc.Send(ctx, p, frame)
		if err != nil && clear {
			c.release(p, time.Now())
		}
		c.answers.doneSending(p, err)
	})
}
