package raintree

import (
	"cmp"
	"context"
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

// queueACKFrame queues an ACK or a proof of forwarding for its validator;
// one that does not fit is dropped and counted.
func (r *Router) queueACKFrame(j ackJob) {
	ok, evicted := r.ackq.Push(j.to, j, func() { r.wg.Go(func() { r.ackq.Drain(j.to, r.sendACK) }) })
	if !ok {
		r.drop(&r.c.ackQueueFull, j.to, "ACK queue full", nil)
	}
	if evicted > 0 {
		r.drop(&r.c.ackQueueFull, j.to, "ACK queue full: the oldest ACK of the validator with the most waiting made way", nil)
	}
}

// sendACK sends one queued ACK (or proof of forwarding).
func (r *Router) sendACK(j ackJob) {
	ctx, cancel := context.WithTimeout(network.WithNoDial(r.ctx, "ACK"), cmp.Or(r.cfg.ACKTimeout, r.cfg.SendTimeout))
	err := j.via.Send(ctx, j.to, j.frame)
	cancel()
	if err != nil {
		r.c.sendErrors.Add(1)
		r.log.Debug("ACK not sent", "to", j.to, "err", err)
		return
	}
	j.sent.Add(1)
}
