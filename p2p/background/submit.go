package background

import (
	"container/heap"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Submit broadcasts a message of this node, a full node under lazy
// gossip, by handing it to its parent validator over background unicast.
// The parent starts it on RainTree and gossip brings it back here. If it
// has not come back within GossipParams.SubmitFallback (a parent that
// drops it, or one that left), it is published on gossip. A whole-ring
// submission of a block waits only for its parent's proof that it
// started it, or for a connection to the parent to close, before it goes
// to the next parent (proof.go). Without a parent it is published at
// once, as Broadcast does.
func (r *Router) Submit(ctx context.Context, msg *wire.Message) error {
	return r.SubmitInShares(ctx, msg, nil, nil)
}

// Share is one validator's share of a full node's broadcast handed over in
// parts: the runs of the ring it starts (raintree.HandoverTargets).
type Share struct {
	To    peer.ID
	Parts []wire.Part
}

// SubmitInShares is Submit with the ring handed over in shares, all sent
// at once, each to its validator, so that the broadcast skips the hop
// through the parent. setHash names the validator set the parts index. The
// shares of validators not connected go to the parent with its own, as do,
// in a second submission, those whose send failed; the parent sends such
// parts to their heads. With no shares the parent gets the whole ring.
func (r *Router) SubmitInShares(ctx context.Context, msg *wire.Message, setHash []byte, shares []Share) error {
	parent := r.Parent()
	if len(shares) == 0 && r.cfg.Gossip.large(len(msg.Raw)) {
		parent = r.blockParent()
	}
	if parent == "" {
		return r.Broadcast(ctx, msg)
	}
	shares = r.withParentShare(parent, shares)
	// A whole-ring submission (a block, or a full node that hands over no
	// parts) is due as soon as a connection to its parent closes, not when
	// the fallback runs out (15 s for a block): the parent may have lost
	// the frame with the connection (a connection manager trimming it
	// while the frame was in flight), and if it did not, publishing costs
	// copies, not the message. A submission in parts is not: its other
	// heads bring it back, a head that leaves costs at most SubmitFallback,
	// and a hostile head could otherwise force a publication of every
	// broadcast handed to it.
	var whole peer.ID // the parent of a whole-ring submission
	if len(shares) == 1 && len(shares[0].Parts) == 0 {
		whole = parent
	}
	prove := whole != "" && r.wantsProof(whole, len(msg.Raw))
	if prove && !r.awaitBeforeSending(msg, whole, 0) {
		return r.Broadcast(ctx, msg)
	}
	failed, err := r.sendShares(ctx, msg, setHash, parent, shares, prove)
	if err == nil && len(failed) > 0 {
		err = r.sendSubmission(ctx, parent, msg, wire.Handover{SetHash: setHash, Parts: failed})
	}
	if err != nil && prove && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		// The parent did not take the block (within the unicast write
		// timeout, or at all): it is due at once, unproven, and goes to
		// the next parent, which passes this one over.
		r.c.submitErrors.Add(1)
		r.log.Debug("handing a block to the parent failed; it goes to the next", "parent", parent, "err", err)
		r.later.awaitProof(msg.ID, whole, time.Now())
		return nil
	}
	if err != nil {
		if prove {
			r.later.forget(msg.ID)
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		r.c.submitErrors.Add(1)
		r.log.Debug("submitting to the parent failed; publishing", "parent", parent, "err", err)
		return r.Broadcast(ctx, msg)
	}
	r.c.submitted.Add(1)
	if prove {
		r.later.awaitProof(msg.ID, whole, time.Now().Add(r.cfg.Gossip.ProofWait(len(msg.Raw))))
		r.checkRecipient(whole)
		return nil
	}
	if !r.queueSubmission(msg, whole, prove) {
		return r.Broadcast(ctx, msg)
	}
	return nil
}

// awaitBeforeSending queues our block msg, about to go to parent (the
// attempt-th) awaiting its proof, before it is sent: the parent may prove
// it before the send returns, and gossip may bring it back meanwhile. It
// is due at the fallback until the send ends. It reports false, counted,
// when the queue is full.
func (r *Router) awaitBeforeSending(msg *wire.Message, parent peer.ID, attempt int) bool {
	p := r.submission(msg, parent, attempt)
	p.awaitProof = true
	if !r.later.add(p) {
		r.c.laterFull.Add(1)
		return false
	}
	return true
}

// checkRecipient makes our submissions to parent due at once if it left
// while one was on its way.
func (r *Router) checkRecipient(parent peer.ID) {
	if parent != "" && r.host.Network().Connectedness(parent) != network.Connected {
		r.later.recipientLeft(parent, time.Now())
	}
}

// queueSubmission queues msg, our broadcast just submitted (to parent for
// a whole-ring submission, else ""), until it is due: at the fallback,
// or, for a block whose parent was asked for a proof (prove), when that
// proof is (proof.go). It reports false, counted, when the queue is full.
func (r *Router) queueSubmission(msg *wire.Message, parent peer.ID, prove bool) bool {
	p := r.submission(msg, parent, 0)
	if prove {
		p.at, p.awaitProof = time.Now().Add(r.cfg.Gossip.ProofWait(len(msg.Raw))), true
	}
	if !r.later.add(p) {
		r.c.laterFull.Add(1)
		return false
	}
	r.checkRecipient(parent) // it may have left while the frame was on its way
	return true
}

// submission is our broadcast msg handed to parent (of a whole-ring
// submission, else ""), the attempt-th parent before it, due at its
// fallback.
func (r *Router) submission(msg *wire.Message, parent peer.ID, attempt int) *pending {
	fallback := time.Now().Add(r.cfg.Gossip.submitFallback(len(msg.Raw)))
	return &pending{msg: msg, at: fallback, fallbackAt: fallback, submitted: true, parent: parent, attempt: attempt}
}

// withParentShare folds the parent's share and those of validators not
// connected into one share for the parent, first in the list; none with
// parts means the whole ring. It is left out when every part has a
// connected head other than the parent.
func (r *Router) withParentShare(parent peer.ID, shares []Share) []Share {
	if len(shares) == 0 {
		return []Share{{To: parent}}
	}
	net := r.host.Network()
	var mine []wire.Part
	out := make([]Share, 0, len(shares)+1)
	for _, s := range shares {
		if s.To == parent || net.Connectedness(s.To) != network.Connected {
			mine = append(mine, s.Parts...)
			continue
		}
		out = append(out, s)
	}
	if len(mine) > 0 {
		out = append([]Share{{To: parent, Parts: mine}}, out...)
	}
	return out
}

// sendShares sends every share to its validator, all at once, the whole
// ring asking for a proof with prove. It returns
// the parts of the shares other than the parent's whose send failed
// (counted in Stats.SubmitErrors), and the error of the parent's send.
func (r *Router) sendShares(ctx context.Context, msg *wire.Message, setHash []byte, parent peer.ID, shares []Share, prove bool) ([]wire.Part, error) {
	var (
		mu        sync.Mutex
		failed    []wire.Part
		parentErr error
		wg        sync.WaitGroup
	)
	for _, s := range shares {
		wg.Go(func() {
			h := wire.Handover{SetHash: setHash, Parts: s.Parts, WantProof: prove}
			err := r.sendSubmission(ctx, s.To, msg, h)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case s.To == parent:
				parentErr = err
			case err == nil:
				r.c.sharesSent.Add(1)
			default:
				r.c.submitErrors.Add(1)
				r.log.Debug("handing a share to its validator failed; the parent takes it", "to", s.To, "err", err)
				failed = append(failed, s.Parts...)
			}
		})
	}
	wg.Wait()
	if parentErr == nil && r.ctx.Err() != nil {
		parentErr = ErrClosed
	}
	return failed, parentErr
}

// RepublishAt is Republish at a later time: the message waits in a
// bounded queue (GossipParams.MaxPending; when it is full the message is
// republished at once, counted in Stats.PendingFull).
func (r *Router) RepublishAt(ctx context.Context, msg *wire.Message, at time.Time) error {
	if !r.cfg.lazy() || r.cfg.Silent {
		return nil
	}
	if !time.Now().Before(at) {
		return r.Republish(ctx, msg)
	}
	if !r.later.add(&pending{msg: msg, at: at}) {
		r.c.laterFull.Add(1)
		return r.Republish(ctx, msg)
	}
	return nil
}

// laterLoop publishes what waits in r.later when it is due, until Close.
func (r *Router) laterLoop() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next, ok := r.later.next()
		wait := time.Hour
		if ok {
			wait = time.Until(next)
		}
		t.Reset(max(wait, 0))
		select {
		case <-r.ctx.Done():
			return
		case <-r.later.wake:
			continue
		case <-t.C:
		}
		for _, p := range r.later.due(time.Now()) {
			r.publishLater(p)
		}
	}
}

func (r *Router) publishLater(p pending) {
	if p.recipientLeft {
		r.c.submitRecipientLeft.Add(1)
	}
	switch {
	case p.submitted && p.returned:
		r.c.submitReturned.Add(1)
	case p.submitted && p.awaitProof:
		r.resubmit(p)
	case p.submitted:
		r.publishFallback(p)
	default:
		if err := r.Republish(r.ctx, p.msg); err != nil && r.ctx.Err() == nil {
			r.log.Debug("republishing", "err", err)
		}
	}
}

// publishFallback publishes our submitted broadcast p, which did not come
// back, on gossip.
func (r *Router) publishFallback(p pending) {
	r.c.submitFallbacks.Add(1)
	if p.parent != "" && !p.recipientLeft && r.cfg.Gossip.UnprovenParentTTL > 0 {
		// A parent that never brought a whole-ring submission back, asked
		// for a proof or not, is passed over like one that proved nothing.
		r.lazy.passOver(p.parent, time.Now().Add(r.cfg.Gossip.UnprovenParentTTL), p.msg.ID)
	}
	if err := r.publish(r.ctx, p.msg); err != nil && r.ctx.Err() == nil {
		r.c.publishErrors.Add(1)
		r.log.Debug("publishing a submitted broadcast that did not come back", "err", err)
	}
}

// pending is a message waiting to be published.
type pending struct {
	msg *wire.Message
	at  time.Time
	// submitted marks our own broadcast handed over; returned that gossip
	// has since brought it back, so it need not be published;
	// recipientLeft that a connection to parent (of a whole-ring
	// submission; empty otherwise) closed before.
	submitted, returned, recipientLeft bool
	parent                             peer.ID
	// awaitProof marks a block whose parent has yet to prove it started
	// it (proof.go): at is then the proof's deadline, and fallbackAt
	// the fallback's; proven that the proof came. attempt counts the
	// parents the block was handed to before this one.
	awaitProof, proven bool
	fallbackAt         time.Time
	attempt            int
	// otherSet marks a block whose parent proved it on another validator
	// set: no proof on ours, but no sign that it sits on blocks either.
	otherSet bool
}

// laterQueue holds the messages waiting to be published, earliest first,
// at most limit of them.
type laterQueue struct {
	mu    sync.Mutex
	limit int
	items pendingHeap
	// submitted indexes our own submitted broadcasts by message ID.
	submitted map[wire.MessageID]*pending
	wake      chan struct{}
}

func newLaterQueue(limit int) *laterQueue {
	return &laterQueue{limit: limit, submitted: map[wire.MessageID]*pending{}, wake: make(chan struct{}, 1)}
}

// add queues p: a republication, or our own submitted broadcast, due
// early if a connection to its parent, when set, closes (recipientLeft).
// It reports false when the queue is full.
func (q *laterQueue) add(p *pending) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) >= q.limit {
		return false
	}
	heap.Push(&q.items, p)
	if p.submitted {
		q.submitted[p.msg.ID] = p
	}
	if q.items[0] == p {
		q.wakeLocked()
	}
	return true
}

func (q *laterQueue) wakeLocked() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// proven records parent's proof that it started our block id, which is
// then due at its fallback. It reports whether such a block awaited it.
func (q *laterQueue) proven(id wire.MessageID, parent peer.ID) bool {
	return q.stopAwaiting(id, parent, true)
}

// stopAwaiting makes our block id, handed to parent and awaiting its
// proof, due at its fallback instead: proven, or never asked for one.
func (q *laterQueue) stopAwaiting(id wire.MessageID, parent peer.ID, proven bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.submitted[id]
	if !ok || !p.awaitProof || p.parent != parent {
		return false
	}
	p.awaitProof, p.proven, p.at = false, proven, p.fallbackAt
	heap.Init(&q.items)
	q.wakeLocked()
	return true
}

// provedOnOtherSet records that parent, which our block id awaits a proof
// from, proved it on another validator set.
func (q *laterQueue) provedOnOtherSet(id wire.MessageID, parent peer.ID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.submitted[id]; ok && p.awaitProof && p.parent == parent {
		p.otherSet = true
	}
}

// awaitProof makes our block id, handed to parent and still awaiting its
// proof, due at at.
func (q *laterQueue) awaitProof(id wire.MessageID, parent peer.ID, at time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.submitted[id]
	if !ok || !p.awaitProof || p.returned || p.parent != parent {
		return
	}
	p.at = at
	heap.Init(&q.items)
	q.wakeLocked()
}

// forget drops our submitted broadcast id, if it is queued.
func (q *laterQueue) forget(id wire.MessageID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	p, ok := q.submitted[id]
	if !ok {
		return
	}
	delete(q.submitted, id)
	if i := slices.Index(q.items, p); i >= 0 {
		heap.Remove(&q.items, i)
	}
}

// cameBack records that gossip delivered one of our submitted broadcasts.
func (q *laterQueue) cameBack(id wire.MessageID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if p, ok := q.submitted[id]; ok {
		p.returned = true
	}
}

// recipientLeft makes the submissions due at now that have not come back
// and went to p, a peer a connection to has closed, and returns how many
// there were. It runs on the swarm's notification of the closed
// connection, so it does no I/O.
func (q *laterQueue) recipientLeft(p peer.ID, now time.Time) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, s := range q.submitted {
		if !s.returned && !s.proven && s.at.After(now) && s.parent == p {
			s.at, s.recipientLeft = now, true
			n++
		}
	}
	if n > 0 {
		heap.Init(&q.items)
		q.wakeLocked()
	}
	return n
}

func (q *laterQueue) next() (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return time.Time{}, false
	}
	return q.items[0].at, true
}

// due removes and returns the messages due at now.
func (q *laterQueue) due(now time.Time) []pending {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []pending
	for len(q.items) > 0 && !q.items[0].at.After(now) {
		p := heap.Pop(&q.items).(*pending)
		if p.submitted && q.submitted[p.msg.ID] == p {
			delete(q.submitted, p.msg.ID)
		}
		out = append(out, *p)
	}
	return out
}

func (q *laterQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

type pendingHeap []*pending

func (h pendingHeap) Len() int           { return len(h) }
func (h pendingHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h pendingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)        { *h = append(*h, x.(*pending)) }
func (h *pendingHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}

// submitFallback is how long a full node waits for its submitted broadcast
// of size bytes to come back before it publishes it itself.
func (g GossipParams) submitFallback(size int) time.Duration {
	if g.large(size) {
		return g.LargeSubmitFallback
	}
	return g.SubmitFallback
}
