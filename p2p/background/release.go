package background

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Early release of held messages (full nodes of a lazy network).
//
// A full node holds a message ForwardDelay (forward.go) so that the
// validators in its mesh, which get it from RainTree, can say they have it
// before pubsub forwards it to them. Once every one of them has said so,
// waiting longer spares no validator a copy: it only keeps the message from
// the full nodes in the mesh that still lack it. So the hold ends half a
// round trip (about one link; releaseGrace) after the last of them has
// spoken, the time for the full nodes in the mesh that their own
// validators fed at about the same moment to say so too; and the forward
// delay bounds only the wait for a validator that does not speak (one
// below a silent validator in RainTree, which is the one that needs the
// copy).
//
// A validator says it has a message with an IDONTWANT (pubsub sends one to
// its mesh when it publishes a message of at least 1 KiB, which a lazy
// validator does for everything RainTree delivers) or by sending a copy.
// Both reach us through pubsub's RawTracer, on its event loop, as do the
// changes to our mesh. An IDONTWANT often arrives before the message
// itself, so what was said is kept per message ID: at most MaxHaveSignals
// IDs, each for LargeForwardDelay, the oldest dropped first when full
// (counted), except an ID a hold waits on. Only validators in our mesh are
// heard, only for IDs of our message-ID length, and at most pubsub's own
// limit of IDs per IDONTWANT from one RPC.
//
// A signal can only end a hold early, never keep a message from anyone:
// pubsub already skips a peer that sent an IDONTWANT for a message (and
// the one it came from), and a lying validator gains nothing but the full
// nodes behind it getting their copy sooner.
type haveSignals struct {
	topic     string
	validator func(peer.ID) bool
	max       int
	maxPeers  int // per message: entryPeers
	ttl       time.Duration
	full      *atomic.Uint64 // IDs dropped to stay within max
	now       func() time.Time

	// joined is signalled when a validator joins the mesh, so its round
	// trip is measured at once (rtt.go).
	joined chan struct{}

	mu   sync.Mutex
	mesh map[peer.ID]struct{}
	// forwardedAt is when each validator last showed it forwards: it
	// sent us a copy of a message (in the mesh), advertised messages in
	// an IHAVE, or proved it started our block (proof.go prefers such a
	// one as a block's parent). Only validators are kept, so there are at
	// most as many as the set has. An IDONTWANT does not count: pubsub
	// sends one for what it receives, whether or not it passes it on.
	forwardedAt map[peer.ID]time.Time
	ids         map[string]*haveEntry
	order       []string // ids' keys, oldest first
	// holds are the entries a hold waits on; they are never dropped, and
	// there are at most ValidateQueueSize of them.
	holds map[*haveEntry]struct{}
}

// haveEntry is what the mesh's validators said about one message, and the
// hold waiting for the rest of them, if any.
type haveEntry struct {
	at      time.Time
	peers   []peer.ID
	waiting map[peer.ID]struct{}
	done    chan struct{} // closed when waiting empties
}

// entryPeers caps the peers remembered per message. Only validators in
// the mesh are heard, and a mesh holds Dhi peers after each heartbeat's
// pruning; grafts accepted between heartbeats may pass it, hence twice
// that, and at least 64.
func entryPeers(g GossipParams) int { return max(64, 2*g.Dhi) }

func newHaveSignals(topic string, validator func(peer.ID) bool, g GossipParams, full *atomic.Uint64) *haveSignals {
	return &haveSignals{
		topic:       topic,
		validator:   validator,
		max:         g.MaxHaveSignals,
		maxPeers:    entryPeers(g),
		ttl:         g.LargeForwardDelay,
		full:        full,
		now:         time.Now,
		joined:      make(chan struct{}, 1),
		mesh:        make(map[peer.ID]struct{}),
		forwardedAt: make(map[peer.ID]time.Time),
		ids:         make(map[string]*haveEntry),
		holds:       make(map[*haveEntry]struct{}),
	}
}

func (h *haveSignals) graft(p peer.ID, topic string) {
	if topic != h.topic {
		return
	}
	h.mu.Lock()
	h.mesh[p] = struct{}{}
	h.mu.Unlock()
	if h.validator(p) {
		select {
		case h.joined <- struct{}{}:
		default:
		}
	}
}

// prune takes a peer out of the mesh and stops holds waiting for it. What
// it showed of its forwarding stays: a validator pruned from a full mesh
// still forwards, and an IHAVE or a proof never needed the mesh.
func (h *haveSignals) prune(p peer.ID, topic string) {
	if topic != h.topic {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leftLocked(p)
}

// gone forgets a peer that disconnected (pubsub then drops it from the
// mesh without a Prune event), its forwarding included, and stops holds
// waiting for it.
func (h *haveSignals) gone(p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.leftLocked(p)
	delete(h.forwardedAt, p)
}

// leftLocked takes p out of the mesh and off every hold. h.mu is held.
func (h *haveSignals) leftLocked(p peer.ID) {
	delete(h.mesh, p)
	for e := range h.holds {
		h.spoke(e, p)
	}
}

// recv notes the IDONTWANTs and IHAVEs of an incoming RPC.
func (h *haveSignals) recv(rpc *pubsub.RPC) {
	h.idontwant(rpc.From(), rpc.GetControl())
	h.ihave(rpc.From(), rpc.GetControl())
}

// ihave notes that validator from, in our mesh or not, advertised
// messages of our topic: pubsub advertises only what it accepted, which
// it also forwarded or published, so a validator that sits on everything
// never does. It only makes from a preferred parent for our blocks
// (proof.go), where a proof still holds it to its word.
func (h *haveSignals) ihave(from peer.ID, ctl *pb.ControlMessage) {
	ours := func(c *pb.ControlIHave) bool { return c.GetTopicID() == h.topic && len(c.GetMessageIDs()) > 0 }
	if !slices.ContainsFunc(ctl.GetIhave(), ours) || !h.validator(from) {
		return
	}
	h.forwarded(from)
}

// forwarded notes that validator p forwards now: it advertised messages,
// or proved it started our block.
func (h *haveSignals) forwarded(p peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forwardedAt[p] = h.now()
}

// idontwant notes the IDONTWANTs in ctl, from peer from: at most
// pubsub's own limit of IDs per IDONTWANT (GossipSubMaxIDontWantLength)
// per RPC, which is what a peer publishing one message at a time sends.
func (h *haveSignals) idontwant(from peer.ID, ctl *pb.ControlMessage) {
	if len(ctl.GetIdontwant()) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.heard(from) {
		return
	}
	n := 0
	for _, c := range ctl.GetIdontwant() {
		for _, id := range c.GetMessageIDs() {
			if n == pubsub.GossipSubMaxIDontWantLength {
				return
			}
			if len(id) == sha256.Size {
				h.note(id, from)
				n++
			}
		}
	}
}

// duplicate notes a copy of a message we already had.
func (h *haveSignals) duplicate(msg *pubsub.Message) {
	if msg.GetTopic() != h.topic || msg.ID == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.heard(msg.ReceivedFrom) {
		h.forwardedAt[msg.ReceivedFrom] = h.now()
		h.note(msg.ID, msg.ReceivedFrom)
	}
}

// delivered notes who sent us a message first.
func (h *haveSignals) delivered(msg *pubsub.Message) {
	if msg.GetTopic() != h.topic {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.heard(msg.ReceivedFrom) {
		h.forwardedAt[msg.ReceivedFrom] = h.now()
	}
}

// heard reports whether p's word counts: a validator in our mesh. h.mu
// is held.
func (h *haveSignals) heard(p peer.ID) bool {
	_, ok := h.mesh[p]
	return ok && h.validator(p)
}

// note records that p has message id, and releases a hold that waited
// for p last. h.mu is held.
func (h *haveSignals) note(id string, p peer.ID) {
	e := h.entry(id)
	if !slices.Contains(e.peers, p) && len(e.peers) < h.maxPeers {
		e.peers = append(e.peers, p)
	}
	h.spoke(e, p)
}

// spoke takes p off e's hold, and ends the wait when nobody is left.
// h.mu is held.
func (h *haveSignals) spoke(e *haveEntry, p peer.ID) {
	if e.waiting == nil {
		return
	}
	delete(e.waiting, p)
	if len(e.waiting) == 0 {
		close(e.done)
		h.unhold(e)
	}
}

// unhold forgets e's hold. h.mu is held.
func (h *haveSignals) unhold(e *haveEntry) {
	e.waiting, e.done = nil, nil
	delete(h.holds, e)
}

// entry returns id's entry, making room for a new one by dropping the
// expired and, when still full, the oldest (counted), except those a hold
// waits on, which go to the back. h.mu is held.
func (h *haveSignals) entry(id string) *haveEntry {
	if e, ok := h.ids[id]; ok {
		return e
	}
	now := h.now()
	for range len(h.order) {
		oldest := h.order[0]
		e := h.ids[oldest]
		expired := now.Sub(e.at) > h.ttl
		if !expired && len(h.ids) < h.max {
			break
		}
		h.order = h.order[1:]
		if _, held := h.holds[e]; held {
			h.order = append(h.order, oldest)
			continue
		}
		if !expired {
			h.full.Add(1)
		}
		delete(h.ids, oldest)
	}
	e := &haveEntry{at: now}
	h.ids[id] = e
	h.order = append(h.order, id)
	return e
}

// wait returns grace after every validator in the mesh other than from
// has said it has message id (early, true), after d, or when ctx ends,
// whichever is first. With rep, it repairs meanwhile the validators
// still silent when their time comes (repair.go).
func (h *haveSignals) wait(ctx context.Context, id string, from peer.ID, d, grace time.Duration, rep *repairs) (early bool) {
	e, done := h.register(id, from)
	if done == nil {
		early, d = grace < d, min(d, grace)
		rep = nil // nobody left to repair
	} else {
		defer h.release(e, done)
	}
	end := time.Now().Add(d)
	t := time.NewTimer(d)
	defer t.Stop()
	var repairAt <-chan time.Time
	if rep != nil {
		repairAt = rep.timer()
		defer rep.stop()
	}
	for {
		select {
		case <-done:
			done, repairAt = nil, nil
			if left := time.Until(end); grace < left {
				t.Reset(grace)
				early = true
			}
		case now := <-repairAt:
			if ctx.Err() == nil {
				rep.fire(now, func(p peer.ID) bool { return h.waitsFor(e, p) })
			}
			repairAt = rep.timer()
		case <-t.C:
			return early
		case <-ctx.Done():
			return false
		}
	}
}

// waitsFor reports whether e's hold still waits for p's word.
func (h *haveSignals) waitsFor(e *haveEntry, p peer.ID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := e.waiting[p]
	return ok
}

// register returns id's entry and a channel closed once the validators in
// the mesh that have not yet said they have id (from aside) have, or a nil
// channel if none is left. A second hold of the same message shares the
// first one's channel.
func (h *haveSignals) register(id string, from peer.ID) (*haveEntry, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entry(id)
	if e.done != nil {
		return e, e.done
	}
	pending := make(map[peer.ID]struct{})
	for p := range h.mesh {
		if p != from && h.validator(p) && !slices.Contains(e.peers, p) {
			pending[p] = struct{}{}
		}
	}
	if len(pending) == 0 {
		return e, nil
	}
	e.waiting, e.done = pending, make(chan struct{})
	h.holds[e] = struct{}{}
	return e, e.done
}

// release ends a hold on e that gave up waiting (its delay ran out, or
// its context ended) if it still waits with done.
func (h *haveSignals) release(e *haveEntry, done <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e.done != nil && (<-chan struct{})(e.done) == done {
		h.unhold(e)
	}
}

// forwardedSince reports whether validator p showed it forwards (a copy,
// an IHAVE, a proof) at since or later.
func (h *haveSignals) forwardedSince(p peer.ID, since time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.forwardedAt[p]
	return ok && !at.Before(since)
}

// meshPeers lists the peers in the mesh that keep reports true of
// (every one when keep is nil), sorted.
func (h *haveSignals) meshPeers(keep func(peer.ID) bool) []peer.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ps []peer.ID
	for p := range h.mesh {
		if keep == nil || keep(p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// meshValidators lists the validators in the mesh.
func (h *haveSignals) meshValidators() []peer.ID { return h.meshPeers(h.validator) }
