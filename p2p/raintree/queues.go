package raintree

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// The router's concurrency is bounded and nothing slow sits on a stream's
// read loop:
//
//   - A read loop only decodes the frame. ACKs are settled right there;
//     payload frames go to the sender's inbound queue (at most
//     InboundQueueLen frames per peer, InboundQueueBytes in all), which
//     Workers goroutines drain, one frame of a peer at a time, so a peer's
//     frames are handled in order and peers take turns.
//   - Forwarded and originated frames go to the target's outbound queue
//     (at most OutboundQueueLen frames), drained by one goroutine per
//     target with frames pending.
//   - ACKs go out on their own protocol (ACKProtocolID), through a queue
//     per validator (ackqueue.go), so they never wait behind a payload
//     frame on a stream, nor behind another validator's ACKs.
//   - Accepted messages go to the handler through a queue of
//     DeliveryQueueLen drained by one goroutine, so a slow application
//     delays nothing but its own deliveries.
//
// Every queue drops, and counts, what does not fit.

type inFrame struct {
	m    *wire.RainTreeMessage
	size int
}

type inQueue struct {
	frames []inFrame
	// busy: the peer is in ready or a worker is handling its frame.
	busy bool
}

// inbox holds the inbound payload frames waiting for a worker.
type inbox struct {
	perPeer, maxBytes int

	mu     sync.Mutex
	cond   sync.Cond
	queues map[peer.ID]*inQueue
	ready  []peer.ID // peers with frames and no worker, in turn order
	bytes  int
	closed bool
}

func newInbox(perPeer, maxBytes int) *inbox {
	b := &inbox{perPeer: perPeer, maxBytes: maxBytes, queues: make(map[peer.ID]*inQueue)}
	b.cond.L = &b.mu
	return b
}

// push queues a frame of size bytes from p, and reports false if it does
// not fit.
func (b *inbox) push(p peer.ID, f inFrame) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[p]
	if b.closed || q != nil && len(q.frames) >= b.perPeer || b.bytes+f.size > b.maxBytes {
		return false
	}
	if q == nil {
		q = &inQueue{}
		b.queues[p] = q
	}
	q.frames = append(q.frames, f)
	b.bytes += f.size
	if !q.busy {
		q.busy = true
		b.ready = append(b.ready, p)
		b.cond.Signal()
	}
	return true
}

// next waits for a peer's frame, and reports false once the inbox closed.
// The caller hands the peer back with done.
func (b *inbox) next() (peer.ID, inFrame, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.ready) == 0 && !b.closed {
		b.cond.Wait()
	}
	if b.closed {
		return "", inFrame{}, false
	}
	p := b.ready[0]
	b.ready = b.ready[1:]
	q := b.queues[p]
	f := q.frames[0]
	q.frames[0] = inFrame{}
	q.frames = q.frames[1:]
	b.bytes -= f.size
	return p, f, true
}

// done ends a worker's turn with p: its next frame waits behind the peers
// already ready.
func (b *inbox) done(p peer.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[p]
	if b.closed || q == nil {
		return
	}
	if len(q.frames) == 0 {
		delete(b.queues, p)
		return
	}
	b.ready = append(b.ready, p)
	b.cond.Signal()
}

func (b *inbox) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.queues, b.ready, b.bytes = nil, nil, 0
	b.cond.Broadcast()
}

// work is one of the Workers goroutines.
func (r *Router) work() {
	for {
		from, f, ok := r.in.next()
		if !ok {
			return
		}
		switch f.m.GetKind() {
		case wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST:
			r.onBroadcast(from, f.m)
		case wire.RainTreeKind_RAIN_TREE_KIND_UNICAST:
			r.onUnicast(from, f.m)
		}
		r.in.done(from)
	}
}

// hopBatch holds back a node's frames of its next hop in a broadcast
// until those of this hop have been written (or dropped), or HopHold
// passed: on a shared uplink, frames sent together share it, so the
// frames whose parts have the most levels still to run go first and
// arrive sooner. The last hop's batch ends the chain (Config.OnTreeSent)
// once its frames are written or HopHold passed, the same way.
type hopBatch struct {
	msg      *wire.Message
	left     atomic.Int32
	next     []delegation
	released atomic.Bool // its next hop has gone (nextHop)
}

// sendHops sends the frames ds that one receipt of msg (or its origin, or
// a handover) calls for, a hop at a time: the frames of ds's first hop
// (its leading run of one level; callers list hops in order, highest
// level first) at once, the rest once those to connected targets are
// written or HopHold passed. When the last hop is written or HopHold
// passed, or there were no frames, Config.OnTreeSent is called. Paced
// frames have their own order and notice (uplink.go).
func (r *Router) sendHops(msg *wire.Message, ds []delegation) {
	if len(ds) == 0 {
		r.treeSent(msg)
		return
	}
	if r.paced(ds[0]) {
		for _, d := range ds {
			r.enqueue(d)
		}
		return
	}
	k := 1
	for k < len(ds) && ds[k].target.Level == ds[0].target.Level {
		k++
	}
	// Only frames to connected targets hold the next hop back: a dial
	// takes a round trip or more, and to a validator that is down, seconds.
	hop := ds[:k]
	held := 0
	for i := range hop {
		if r.host.Network().Connectedness(hop[i].view.set.At(hop[i].target.Index).PeerID) == network.Connected {
			hop[i], hop[held] = hop[held], hop[i]
			held++
		}
	}
	b := &hopBatch{msg: msg, next: ds[k:]}
	b.left.Store(int32(held))
	if held > 0 {
		// The last hop is timed too: what waits on it is the notice, and
		// with it the node's gossip, which a target that stalls its stream
		// must not hold back for SendTimeout.
		r.hops.hold(b, r.cfg.HopHold)
	}
	for i, d := range hop {
		if i < held {
			d.batch = b
		}
		r.enqueue(d)
	}
	if held == 0 {
		r.nextHop(b)
	}
}

// written counts d's frame written or dropped, and goes on to the next
// hop once every frame of d's hop is.
func (r *Router) written(d delegation) {
	if d.batch != nil && d.batch.left.Add(-1) == 0 {
		r.nextHop(d.batch)
	}
}

// nextHop sends b's next hop (or ends the chain after the last), once.
// Once the router is closing, the held frames only report ErrClosed.
func (r *Router) nextHop(b *hopBatch) {
	if !b.released.CompareAndSwap(false, true) {
		return
	}
	if r.ctx.Err() != nil {
		for _, d := range b.next {
			d.report(ErrClosed)
		}
		return
	}
	r.sendHops(b.msg, b.next)
}

// treeSent tells Config.OnTreeSent that this node's tree frames of msg
// have left.
func (r *Router) treeSent(msg *wire.Message) {
	if r.cfg.OnTreeSent != nil && r.ctx.Err() == nil { // a hop's timer may outlast Close
		r.cfg.OnTreeSent(msg)
	}
}

// outQueue is one target's pending frames.
type outQueue struct {
	items   []delegation
	running bool
}

// enqueue hands d to its target's sender. A frame that does not fit is
// counted and treated like one that could not be sent.
func (r *Router) enqueue(d delegation) {
	if r.paced(d) {
		r.enqueueUplink(d)
		return
	}
	to := d.view.set.At(d.target.Index).PeerID
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		d.report(ErrClosed)
		r.written(d) // its hop goes on, and reports ErrClosed for the rest
		return
	}
	q := r.out[to]
	if q == nil {
		q = &outQueue{}
		r.out[to] = q
	}
	size := int64(len(d.msg.Raw))
	if len(q.items) >= r.cfg.OutboundQueueLen || r.outBytes+size > int64(r.cfg.OutboundQueueBytes) {
		r.mu.Unlock()
		r.c.outboundFull.Add(1)
		r.log.Debug("outbound queue full", "to", to, "level", d.target.Level)
		d.report(ErrQueueFull)
		r.written(d)
		if r.cfg.ACK && d.target.Level > 0 {
			r.c.ackTimeouts.Add(1)
			r.redelegate(d)
		}
		return
	}
	q.items = append(q.items, d)
	r.outBytes += size
	if !q.running {
		q.running = true
		r.wg.Add(1)
		go r.drain(to, q)
	}
	r.mu.Unlock()
}

// drain sends a target's frames until its queue is empty.
func (r *Router) drain(to peer.ID, q *outQueue) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if r.closed || len(q.items) == 0 {
			left := q.items
			for _, d := range left {
				r.outBytes -= int64(len(d.msg.Raw))
			}
			q.items, q.running = nil, false
			delete(r.out, to)
			r.mu.Unlock()
			for _, d := range left {
				d.report(ErrClosed)
				r.written(d)
			}
			return
		}
		d := q.items[0]
		q.items[0] = delegation{}
		q.items = q.items[1:]
		r.outBytes -= int64(len(d.msg.Raw))
		r.mu.Unlock()
		d.report(r.sendTree(d))
		r.written(d)
	}
}

// report tells a waiting Broadcast how a first attempt went.
func (d delegation) report(err error) {
	if d.result != nil {
		d.result <- err
	}
}

type delivery struct {
	from            peer.ID
	msg             *wire.Message
	broadcast, leaf bool
}

// deliver queues an accepted message for the handler, within
// DeliveryQueueLen messages and DeliveryQueueBytes bytes.
func (r *Router) deliver(from peer.ID, msg *wire.Message, broadcast, leaf bool) {
	size := int64(len(msg.Raw))
	if r.deliveryBytes.Add(size) <= int64(r.cfg.DeliveryQueueBytes) {
		select {
		case r.deliveries <- delivery{from, msg, broadcast, leaf}:
			return
		default:
		}
	}
	r.deliveryBytes.Add(-size)
	r.c.deliveryFull.Add(1)
	r.log.Debug("delivery queue full", "from", from, "msg_id", msg.ID)
}

// deliverLoop is the handler's only caller.
func (r *Router) deliverLoop() {
	for {
		select {
		case <-r.ctx.Done():
			return
		case d := <-r.deliveries:
			r.handler(d.from, d.msg, d.broadcast, d.leaf)
			r.deliveryBytes.Add(-int64(len(d.msg.Raw)))
		}
	}
}
