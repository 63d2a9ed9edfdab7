package background

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// Large gossip writes leave one at a time (GossipParams.LargeWriteHold).
//
// Pubsub queues a block to every mesh peer at once and checks a peer's
// IDONTWANT only then. The copies shared the uplink, each took as many
// copy-times as there were, and a receiver could decline none: it says
// IDONTWANT only once a copy has arrived whole, and by then every other
// copy was on its way. Pubsub writes each RPC with one Write on the
// stream it opened to the peer, so the host pubsub is given (uplinkHost)
// wraps those streams: a Write of at least LargeBytes waits for the one
// before it (or for that one to have run LargeWriteHold), and then leaves
// out the messages the peer has declined meanwhile. The first copy leaves
// at the whole uplink's rate, and its receiver's IDONTWANT spares the
// copies still waiting. The wire is unchanged: this node only writes
// fewer messages, later.
//
// What a peer declines is remembered per (peer, message ID) in a bounded
// LRU, until it is pushed out: a peer that has a message never needs it
// again (pubsub forgets an IDONTWANT after 3 heartbeats, but checks it
// only when it queues, and a write may wait longer for its turn). A peer
// can only decline what is sent to itself.

// uplink is the turn of large writes and the peers' IDONTWANTs.
type uplink struct {
	large     int
	idLen     int // the length of this network's message IDs
	hold      time.Duration
	turn      chan struct{}
	done      <-chan struct{}
	msgID     func(*pb.Message) string
	declined  *lru.Cache[declinedKey, struct{}]
	asks      *asks        // nil: IWANTs leave as pubsub writes them
	busy      *busyWrites  // nil: busy notices are not heeded
	notices   *busyNotices // nil: this node sends none (only full nodes do)
	askers    *clearAsks   // nil: large writes go unasked (clear.go)
	clearance *clearance   // nil: this node answers no asks

	// repairedMu guards repaired: the peers this node sent a repair
	// lately (repair.go), whose small frames it reads for the messages to
	// leave out.
	repairedMu sync.Mutex
	repaired   deadlines
	// repairsEnd is the latest of repaired's deadlines (Unix nanoseconds),
	// so that a small write past it, every one when repairs are off, takes
	// no lock.
	repairsEnd atomic.Int64

	waited, overtook, skipped, forgotten atomic.Uint64
}

type declinedKey struct {
	peer peer.ID
	id   string
}

// errUplinkClosed ends a write that waited for its turn when the router
// closed.
var errUplinkClosed = errors.New("background: uplink closed")

func newUplink(g GossipParams, msgID func(*pb.Message) string, idLen int, done <-chan struct{}) (*uplink, error) {
	u := &uplink{
		large: g.LargeBytes, hold: g.LargeWriteHold, idLen: idLen,
		turn: make(chan struct{}, 1), done: done, msgID: msgID,
		busy: newBusyWrites(g.BusyHold), repaired: deadlines{},
	}
	var err error
	u.declined, err = lru.NewWithEvict(g.UnwantedMemory, func(declinedKey, struct{}) { u.forgotten.Add(1) })
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	return u, nil
}

// recv notes the IDONTWANTs in an RPC from a peer (the raw tracer's
// RecvRPC, which sees an RPC before pubsub's own limits): only IDs of the
// length this network's message IDs have, and at most pubsub's
// GossipSubMaxIDontWantLength of them per RPC, so one RPC cannot push
// every other peer's out, and the memory holds UnwantedMemory pairs of
// fixed size.
func (u *uplink) recv(rpc *pubsub.RPC) { u.noteDeclines(rpc.From(), rpc.GetControl()) }

// noteDeclines notes the IDONTWANTs of ctl, from peer from, and wakes
// the writes held for a busy peer.
func (u *uplink) noteDeclines(from peer.ID, ctl *pb.ControlMessage) {
	n := 0
	defer func() {
		if n > 0 {
			u.busy.declined(from)
		}
	}()
	for _, idw := range ctl.GetIdontwant() {
		for _, id := range idw.GetMessageIDs() {
			if len(id) != u.idLen {
				continue
			}
			if n++; n > pubsub.GossipSubMaxIDontWantLength {
				return
			}
			u.declined.Add(declinedKey{from, id}, struct{}{})
		}
	}
}

// repairedWith notes that this node sent p message id in a repair: pubsub's
// own copy to p is then left out as if p had declined it, for as long as
// a held message may still be forwarded (until).
func (u *uplink) repairedWith(p peer.ID, id string, until time.Time) {
	u.declined.Add(declinedKey{p, id}, struct{}{})
	u.repairedMu.Lock()
	defer u.repairedMu.Unlock()
	u.repaired.set(p, until, time.Now())
	if n := until.UnixNano(); n > u.repairsEnd.Load() {
		u.repairsEnd.Store(n) // under repairedMu: no other writer
	}
}

// repairedLately reports whether this node sent p a repair whose copy
// pubsub may still forward.
func (u *uplink) repairedLately(p peer.ID, now time.Time) bool {
	if now.UnixNano() >= u.repairsEnd.Load() {
		return false
	}
	u.repairedMu.Lock()
	defer u.repairedMu.Unlock()
	return u.repaired.on(p, now)
}

// declinedBy reports whether p has said it has the message id.
func (u *uplink) declinedBy(p peer.ID, id string) bool {
	_, ok := u.declined.Get(declinedKey{p, id})
	return ok
}

// write writes frame on s in its turn if it is large, once its peer is
// no longer busy (busy.go), without the messages s's peer declined
// meanwhile; it reports frame's length as written when it wrote less.
func (u *uplink) write(s network.Stream, frame []byte) (int, error) {
	if len(frame) < u.large {
		return u.writeSmall(s, frame)
	}
	turn, err := u.takeWhenIdle(s, frame)
	if err != nil {
		return 0, err
	}
	if turn {
		// The turn passes on when the write ends or has run hold.
		var once sync.Once
		pass := func() { once.Do(func() { <-u.turn }) }
		t := time.AfterFunc(u.hold, pass)
		defer func() { t.Stop(); pass() }()
	}
	out, changed := u.withoutDeclined(s.Conn().RemotePeer(), frame)
	return writeInstead(s, frame, out, changed)
}

// takeWhenIdle waits for s's peer to be no longer busy (busy.go), then
// for the turn (take). The peer may say it is busy while the write waits
// for the turn: the write then passes the turn on and waits again, so the
// turn goes to a peer that can take a copy at its downlink's whole rate.
// A write is held at most busyWriteHolds holds from when it began, and
// then waits at most hold more for its turn.
func (u *uplink) takeWhenIdle(s network.Stream, frame []byte) (bool, error) {
	p := s.Conn().RemotePeer()
	w := u.busy.wait(p, u.declinedAll(p, frame))
	var c turnCount
	for {
		w.await(u.done)
		turn, err := u.take(&c)
		if err != nil || !w.busy() && u.clearToSend(p, w) {
			return turn, err
		}
		w.hold() // before the turn passes on
		if turn {
			<-u.turn
		}
		select {
		case <-u.done:
			return false, errUplinkClosed
		default:
		}
	}
}

// clearToSend asks p whether the write may go now (clear.go), holding
// the turn, unless the write carries nothing p has not declined, has
// asked maxAsksPerWrite times or waited one ClearWait for answers in
// all, or is past its busy deadline.
func (u *uplink) clearToSend(p peer.ID, w *busyWait) bool {
	if u.askers == nil || w == nil || w.asks >= maxAsksPerWrite || w.all() || !time.Now().Before(w.last) {
		return true
	}
	w.asks++
	start := time.Now()
	defer func() { w.asked += time.Since(start) }()
	return u.askers.ask(p, u.askers.wait-w.asked, u.done)
}

// declinedAll is a check that p has declined every message frame
// carries (false for a frame that carries none, or that it cannot
// read); frame is read at the first check.
func (u *uplink) declinedAll(p peer.ID, frame []byte) func() bool {
	var ids []string
	read := false
	return func() bool {
		if !read {
			read = true
			if rpc, ok := decodeRPC(frame); ok {
				for _, m := range rpc.GetPublish() {
					ids = append(ids, u.msgID(m))
				}
			}
		}
		for _, id := range ids {
			if !u.declinedBy(p, id) {
				return false
			}
		}
		return len(ids) > 0
	}
}

// writeSmall writes frame, without its IWANTs while a large frame is
// arriving (asks.go), and, to a peer repaired lately, without what it
// was repaired with (repair.go).
func (u *uplink) writeSmall(s network.Stream, frame []byte) (int, error) {
	now := time.Now()
	if p := s.Conn().RemotePeer(); u.repairedLately(p, now) {
		out, changed := u.withoutDeclined(p, frame)
		return writeInstead(s, frame, out, changed)
	}
	out, changed := u.asks.filter(frame, now)
	return writeInstead(s, frame, out, changed)
}

// take waits for the turn, at most hold (none once the uplink closed):
// past that (writes ahead that
// take long, slow or hostile readers among their peers) it reports false
// and the write goes beside the others, so no queue of slow peers can
// hold a write longer than hold, nor past pubsub's write deadline. c
// counts the write once as waited and once as overtaking, however often
// it waits.
func (u *uplink) take(c *turnCount) (bool, error) {
	select {
	case <-u.done: // a free turn would win the select below
		return false, errUplinkClosed
	default:
	}
	select {
	case u.turn <- struct{}{}:
		return true, nil
	default:
	}
	c.once(&c.waited, &u.waited)
	t := time.NewTimer(u.hold)
	defer t.Stop()
	select {
	case u.turn <- struct{}{}:
		return true, nil
	case <-t.C:
		c.once(&c.overtook, &u.overtook)
		return false, nil
	case <-u.done:
		return false, errUplinkClosed
	}
}

// turnCount is what one write has been counted as (Stats).
type turnCount struct{ waited, overtook bool }

// once adds one to n unless the write was counted there (counted).
func (c *turnCount) once(counted *bool, n *atomic.Uint64) {
	if !*counted {
		*counted = true
		n.Add(1)
	}
}

// withoutDeclined is frame (a varint-delimited RPC) without the messages
// p declined, and without its IWANTs while a block arrives (asks.go),
// nil if nothing is left to say, and whether it changed. A frame it
// cannot read goes as it is.
func (u *uplink) withoutDeclined(p peer.ID, frame []byte) ([]byte, bool) {
	holdAsks := u.asks.holds(frame, time.Now())
	return rewrite(frame, func(rpc *pb.RPC) bool {
		keep := rpc.Publish[:0]
		for _, m := range rpc.Publish {
			if u.declinedBy(p, u.msgID(m)) {
				u.skipped.Add(1)
				continue
			}
			keep = append(keep, m)
		}
		changed := len(keep) != len(rpc.GetPublish())
		rpc.Publish = keep
		if holdAsks {
			changed = u.asks.dropIWants(rpc) || changed
		}
		return changed
	})
}

// rewrite is frame (a varint-delimited RPC) with edit applied to its RPC,
// and whether edit changed it; nil if nothing is left to say. A frame it
// cannot read, or edit leaves as it was, is returned as it is.
func rewrite(frame []byte, edit func(*pb.RPC) bool) ([]byte, bool) {
	rpc, ok := decodeRPC(frame)
	if !ok || !edit(rpc) {
		return frame, false
	}
	if proto.Size(rpc) == 0 { // nothing else to say either
		return nil, true
	}
	b, err := proto.Marshal(rpc)
	if err != nil {
		return frame, false
	}
	return append(binary.AppendUvarint(make([]byte, 0, len(b)+binary.MaxVarintLen64), uint64(len(b))), b...), true
}

// decodeRPC reads frame, a varint-delimited RPC.
func decodeRPC(frame []byte) (*pb.RPC, bool) {
	size, n := binary.Uvarint(frame)
	if n <= 0 || uint64(len(frame)-n) != size {
		return nil, false
	}
	var rpc pb.RPC
	if err := proto.Unmarshal(frame[n:], &rpc); err != nil {
		return nil, false
	}
	return &rpc, true
}

// writeInstead writes out on s in frame's place when changed (nothing if
// out is nil), and reports frame's length as written.
func writeInstead(s network.Stream, frame, out []byte, changed bool) (int, error) {
	if !changed {
		return s.Write(frame)
	}
	if out != nil {
		if _, err := s.Write(out); err != nil {
			return 0, err
		}
	}
	return len(frame), nil
}

// uplinkHost is the host pubsub gets: the streams pubsub opens write
// through the uplink (pubsub only writes on streams it opens), and those
// it accepts are followed for large frames (asks.go).
type uplinkHost struct {
	host.Host
	u *uplink
}

func (h uplinkHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return uplinkStream{Stream: s, u: h.u}, nil
}

func (h uplinkHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.u.asks.following(handler))
}

func (h uplinkHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, h.u.asks.following(handler))
}

type uplinkStream struct {
	network.Stream
	u *uplink
}

func (s uplinkStream) Write(p []byte) (int, error) { return s.u.write(s.Stream, p) }

// fill sets s's counters of large writes; none when they do not take
// turns (u is nil).
func (u *uplink) fill(s *Stats) {
	if u == nil {
		return
	}
	s.LargeWritesWaited, s.LargeWritesOvertook = u.waited.Load(), u.overtook.Load()
	s.CopiesDeclined, s.UnwantedForgotten = u.skipped.Load(), u.forgotten.Load()
	if u.asks != nil {
		s.IWantsHeld = u.asks.held.Load()
	}
	if u.busy != nil {
		s.BusyNoticesHeard, s.LargeWritesHeldBusy = u.busy.heard.Load(), u.busy.held.Load()
	}
	if u.notices != nil {
		s.BusyNoticesSent, s.BusyNoticesDropped = u.notices.sent.Load(), u.notices.dropped.Load()
	}
	if a := u.askers; a != nil {
		s.AsksSent, s.AsksCleared, s.AsksRefused, s.AsksUnanswered = a.asked.Load(), a.cleared.Load(), a.refused.Load(), a.unanswered.Load()
		s.AsksMuted = a.muted.Load()
	}
	if c := u.clearance; c != nil {
		s.ClearancesGiven, s.ClearancesRefused, s.AnswersDropped = c.clears.Load(), c.refusals.Load(), c.answers.dropped.Load()
	}
}
