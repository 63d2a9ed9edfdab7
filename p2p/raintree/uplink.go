package raintree

import (
	"cmp"
	"slices"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// Large frames share one uplink, one at a time, biggest subtree first.
//
// A store-and-forward tree is as fast as the time its nodes take to get a
// copy to each target. Sent all at once, a node's k copies of a block
// share its uplink, so every target gets its copy only after k copy-times,
// and none can start forwarding before. Sent one after another, the first
// target, whose span (subtree) is the largest, has its copy after one
// copy-time and forwards while the node sends the rest. So tree frames of
// at least Config.PaceBytes leave through the uplink queue: one sender
// goroutine, frames re-delegated after a failed head first (their spans
// are already late by the failure's detection, a second or more for a
// block) unless they carry one validator alone, then the largest span
// first, then the order they came in. (By
// level, as before the eighth session, a re-delegated frame waited behind
// the node's own frames of its level, and a frame of a laggard head alone,
// a leaf, went before whole subtrees.) A frame counts as sent once the
// transport took it; flow control makes that close to the moment its
// bytes left. Small frames, whose time is latency rather than bandwidth,
// keep their per-target queues.

// paced reports whether d goes through the uplink queue.
func (r *Router) paced(d delegation) bool {
	return d.target.Level > 0 && r.cfg.Paces(len(d.msg.Raw))
}

// uplinkQueue holds large tree frames in sending order.
type uplinkQueue struct {
	items   []delegation
	running bool
}

// pushLocked adds d in its place and reports false when the queue is full.
// r.mu must be held.
func (q *uplinkQueue) pushLocked(d delegation, limit int) bool {
	if len(q.items) >= limit {
		return false
	}
	i, _ := slices.BinarySearchFunc(q.items, d, uplinkOrder)
	for i < len(q.items) && uplinkOrder(q.items[i], d) == 0 {
		i++ // behind earlier frames of its rank
	}
	q.items = slices.Insert(q.items, i, d)
	return true
}

// uplinkOrder ranks frames for the uplink: re-delegated subtrees first,
// as their spans are already late by a failure's detection, then larger
// spans first. A re-delegated frame of one validator alone (the
// validators skipped around a head that is down, or a laggard) waits
// like any leaf: sent first, a few of them held back whole subtrees.
func uplinkOrder(a, b delegation) int {
	if c := cmp.Compare(lateSubtree(b), lateSubtree(a)); c != 0 {
		return c
	}
	return cmp.Compare(b.target.Span.Len, a.target.Span.Len)
}

// lateSubtree is 1 for a re-delegated frame of more than one validator.
func lateSubtree(d delegation) int {
	if d.retries > 0 && d.target.Span.Len > 1 {
		return 1
	}
	return 0
}

// popLocked takes the first frame. r.mu must be held.
func (q *uplinkQueue) popLocked() (delegation, bool) {
	if len(q.items) == 0 {
		return delegation{}, false
	}
	d := q.items[0]
	q.items[0] = delegation{}
	q.items = q.items[1:]
	return d, true
}

// enqueueUplink hands a large tree frame to the uplink queue; a frame that
// does not fit is counted and re-delegated like one that could not be sent.
func (r *Router) enqueueUplink(d delegation) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		d.report(ErrClosed)
		return
	}
	size := int64(len(d.msg.Raw))
	if r.outBytes+size > int64(r.cfg.OutboundQueueBytes) || !r.up.pushLocked(d, r.cfg.OutboundQueueLen) {
		r.mu.Unlock()
		r.c.outboundFull.Add(1)
		d.report(ErrQueueFull)
		if r.cfg.ACK {
			r.c.ackTimeouts.Add(1)
			r.redelegate(d)
		}
		r.pacedSent(d.msg) // nothing of it may be left to wait for
		return
	}
	r.outBytes += size
	if !r.up.running {
		r.up.running = true
		r.wg.Add(1)
		go r.drainUplink()
	}
	r.mu.Unlock()
}

// drainUplink sends the uplink queue's frames one at a time until it is
// empty.
func (r *Router) drainUplink() {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		d, ok := r.up.popLocked()
		if ok {
			r.outBytes -= int64(len(d.msg.Raw))
		}
		if r.closed || !ok {
			left := r.up.items
			for _, l := range left {
				r.outBytes -= int64(len(l.msg.Raw))
			}
			r.up.items, r.up.running = nil, false
			r.mu.Unlock()
			if ok {
				d.report(ErrClosed)
			}
			for _, d := range left {
				d.report(ErrClosed)
			}
			return
		}
		r.mu.Unlock()
		d.report(r.sendTree(d))
		r.pacedSent(d.msg)
	}
}

// pacedSent calls Config.OnTreeSent once no frame of msg waits in the
// uplink queue any more.
func (r *Router) pacedSent(msg *wire.Message) {
	if r.cfg.OnTreeSent == nil {
		return
	}
	r.mu.Lock()
	waiting := slices.ContainsFunc(r.up.items, func(d delegation) bool { return d.msg.ID == msg.ID })
	r.mu.Unlock()
	if !waiting {
		r.cfg.OnTreeSent(msg)
	}
}
