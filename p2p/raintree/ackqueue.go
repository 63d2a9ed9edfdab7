package raintree

import (
	"cmp"
	"context"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/unicast"
)

// ACKs and proofs of forwarding go back to the validator whose frame they
// answer, each validator's in a queue of its own (at most ACKQueuePerPeer,
// and ACKQueueLen in all) drained by a goroutine of its own while it has
// any. So a validator that stops reading its ACK stream, or never answers
// a new one, holds up only its own ACKs: it used to stall the two senders
// every ACK shared, and with them the ACKs of every honest sender, who then
// re-delegated this node's spans and took it for a laggard. A send never
// dials (the validator just sent us a frame over a connection) and takes
// at most ACKTimeout, after which the ACK is late anyway. The goroutines
// are at most the validators with ACKs pending, and frames are taken only
// from validators of the set.

type ackJob struct {
	to    peer.ID
	frame []byte
	via   *unicast.Router // the ACK or the proof protocol
	sent  *atomic.Uint64  // counts it once sent
}

// ackQueues holds the ACK jobs waiting, by the validator they go to.
type ackQueues struct {
	mu     sync.Mutex
	queues map[peer.ID][]ackJob
	total  int
	closed bool
}

// push queues j and reports whether it fit, and whether its validator
// needs a sender started.
func (q *ackQueues) push(j ackJob, perPeer, total int) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.total >= total || len(q.queues[j.to]) >= perPeer {
		return false, false
	}
	if q.queues == nil {
		q.queues = map[peer.ID][]ackJob{}
	}
	pending, running := q.queues[j.to]
	q.queues[j.to] = append(pending, j)
	q.total++
	return true, !running
}

// pop takes to's next job, or forgets to and reports false when it has
// none left (or the queues closed): its sender then ends.
func (q *ackQueues) pop(to peer.ID) (ackJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	pending := q.queues[to]
	if q.closed || len(pending) == 0 {
		q.total -= len(pending)
		delete(q.queues, to)
		return ackJob{}, false
	}
	j := pending[0]
	pending[0] = ackJob{}
	q.queues[to] = pending[1:]
	q.total--
	return j, true
}

// close makes every sender end at its next pop.
func (q *ackQueues) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// queueACKFrame queues an ACK or a proof of forwarding for its validator;
// one that does not fit is dropped and counted.
func (r *Router) queueACKFrame(j ackJob) {
	ok, start := r.ackq.push(j, r.cfg.ACKQueuePerPeer, r.cfg.ACKQueueLen)
	switch {
	case !ok:
		r.drop(&r.c.ackQueueFull, j.to, "ACK queue full", nil)
	case start:
		r.wg.Go(func() { r.sendACKs(j.to) })
	}
}

// sendACKs sends to's queued ACKs until there are none.
func (r *Router) sendACKs(to peer.ID) {
	for {
		j, ok := r.ackq.pop(to)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "ACK"), cmp.Or(r.cfg.ACKTimeout, r.cfg.SendTimeout))
		err := j.via.Send(ctx, j.to, j.frame)
		cancel()
		if err != nil {
			r.c.sendErrors.Add(1)
			println("ACKERR", err.Error())
			continue
		}
		j.sent.Add(1)
	}
}
