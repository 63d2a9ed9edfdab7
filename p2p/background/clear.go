package background

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

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
//   - a node that never answers costs each writer one ClearWait of its
//     turn, and then is not asked for askMute;
//   - a validator cleared that sends nothing holds that node's other
//     validators for one ClearWait, and is then not cleared again, only
//     let through, for three BusyHolds;
//   - anyone else is cleared one at a time, beside the validator
//     cleared: it can hold back only the writes of peers outside the
//     set, as a validator holds back the validators'.
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

// clearAsks are this node's asks, as a writer.
type clearAsks struct {
	wait     time.Duration
	supports func(peer.ID) bool                           // the peer lists ClearProtocolID
	send     func(context.Context, peer.ID, []byte) error // over background unicast

	mu      sync.Mutex
	pending map[peer.ID]chan bool
	muted   map[peer.ID]time.Time

	asked, cleared, refused, unanswered atomic.Uint64
}

func newClearAsks(wait time.Duration, supports func(peer.ID) bool, send func(context.Context, peer.ID, []byte) error) *clearAsks {
	if wait <= 0 {
		return nil
	}
	return &clearAsks{wait: wait, supports: supports, send: send,
		pending: map[peer.ID]chan bool{}, muted: map[peer.ID]time.Time{}}
}

// ask asks p whether a large write may go now and waits, at most wait,
// for the answer. It reports false only when p said it is busy (the
// notice is heeded by then); a peer that does not take asks, is muted,
// is already being asked, or does not answer in time is written to.
func (a *clearAsks) ask(p peer.ID, done <-chan struct{}) bool {
	if a == nil || !a.supports(p) {
		return true
	}
	answer, ok := a.begin(p, time.Now())
	if !ok {
		return true
	}
	defer a.end(p)
	a.asked.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), a.wait)
	defer cancel()
	if err := a.send(ctx, p, wire.EncodeAskToSend()); err != nil {
		a.mute(p)
		return true
	}
	select {
	case clear := <-answer:
		if clear {
			a.cleared.Add(1)
		} else {
			a.refused.Add(1)
		}
		return clear
	case <-ctx.Done():
		a.mute(p)
		return true
	case <-done:
		return true
	}
}

// begin registers an ask to p at now, unless p is muted or being asked.
func (a *clearAsks) begin(p peer.ID, now time.Time) (chan bool, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until, ok := a.muted[p]; ok {
		if now.Before(until) {
			return nil, false
		}
		delete(a.muted, p)
	}
	if _, ok := a.pending[p]; ok {
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

// mute stops asking p for askMute: it did not answer in time. The muted
// peers are swept when they are as many as the pending asks could make.
func (a *clearAsks) mute(p peer.ID) {
	a.unanswered.Add(1)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.muted) >= busySweep {
		for q, until := range a.muted {
			if !now.Before(until) {
				delete(a.muted, q)
			}
		}
	}
	a.muted[p] = now.Add(askMute)
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
	receiving func(time.Time) bool // a counted frame is arriving (asks.go)

	mu         sync.Mutex
	val, other slot
	barred     map[peer.ID]time.Time // cleared and sent nothing: let through, not cleared, until then

	clears, refusals atomic.Uint64
}

// slot is one clearance: whom, until when, and whether its frame began.
type slot struct {
	to    peer.ID
	until time.Time
	used  bool
}

func newClearance(ttl, hold time.Duration, trusted func(peer.ID) bool, receiving func(time.Time) bool) *clearance {
	return &clearance{ttl: ttl, hold: hold, trusted: trusted, receiving: receiving, barred: map[peer.ID]time.Time{}}
}

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
	if mine.to != p && !now.Before(c.barred[p]) {
		*mine = slot{to: p, until: now.Add(c.ttl)}
	}
	return true, 0
}

// settle ends a clearance that ran out, and bars its peer if it sent
// nothing.
func (c *clearance) settle(s *slot, now time.Time) {
	if s.to == "" || now.Before(s.until) {
		return
	}
	if !s.used {
		if len(c.barred) >= busySweep {
			for q, until := range c.barred {
				if !now.Before(until) {
					delete(c.barred, q)
				}
			}
		}
		c.barred[s.to] = s.until.Add(busyWriteHolds * c.hold)
	}
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

// onAsk answers p's ask, on its own goroutine: a clearance, or a busy
// notice. An answer to a peer that one is still on its way to is
// dropped, and counted: the ask then runs out, and the write goes.
func (r *Router) onAsk(u *uplink, p peer.ID) {
	if u.clearance == nil {
		return
	}
	clear, d := u.clearance.answer(p, time.Now())
	frame := wire.EncodeClearToSend()
	if !clear {
		var err error
		if frame, err = wire.EncodeBusy(d); err != nil {
			return
		}
	}
	if !u.answers.startSending(p) {
		return
	}
	r.wg.Go(func() {
		ctx, cancel := context.WithTimeout(r.ctx, u.clearance.ttl)
		defer cancel()
		u.answers.doneSending(p, r.uc.Send(ctx, p, frame))
	})
}
