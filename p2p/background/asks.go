package background

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// No IWANT while a large frame arrives (GossipParams.AskHold).
//
// Pubsub asks every peer that advertises a message it has not seen, and
// a message is seen only once it has arrived whole. A block takes a
// second or more to arrive, a peer advertises what it has every
// heartbeat, so a node receiving a block asked for it again and again:
// each answer was another copy on its downlink, which made the first
// arrive later still, and a turn of the answering peer's uplink that its
// own mesh peers waited for. A validator did the same while RainTree
// brought it the block. So while a frame of at least LargeBytes arrives
// from a validator on a gossip or RainTree stream, on track to be whole
// within AskHold of its start and for at most that long, this node's
// RPCs leave without their IWANTs. Only validators, who are known and
// staked, can hold them back: anyone else could stream large frames of
// padding to stop this node's repairs. And a validator's frames count
// once every two holds, whatever stream they come on, so one cannot
// hold them back more than half the time.
//
// What is left out is dropped, not delayed: every node that has the
// message advertises it for pubsub's gossip history (three heartbeats),
// and a later IHAVE finds it seen, or asks. Pubsub tracks a promise for
// an IWANT it believes it sent; a promise is kept when the message
// arrives from anyone within pubsub's follow-up time (3 s, the default
// AskHold), so the block held for keeps its promises, and only another
// message that never comes could cost its advertiser, within the
// behaviour penalty's free allowance (scoring.go).

// askGrace is how long a large frame counts before its rate is judged:
// its first bytes may wait for a round trip.
const askGrace = 250 * time.Millisecond

// asks is what this node is receiving, and the IWANTs held back.
type asks struct {
	large   int
	hold    time.Duration
	minRate int                // bytes per second
	trusted func(peer.ID) bool // whose frames hold IWANTs back; nil: anyone's

	mu    sync.Mutex
	reads map[*readStream]struct{} // streams in the middle of a counted frame
	// counted is when each peer's last counted frame began: a peer's
	// frames count at most once every two holds, on any stream.
	counted map[peer.ID]time.Time

	held atomic.Uint64
	// began, if set, hears of each frame counted, with its peer; it must
	// not block (busy.go).
	began func(peer.ID)
	// started, if set, hears of every large frame, from anyone, counted
	// or not, with its peer and when it began (clear.go); ended hears
	// when such a frame was read whole, or its stream ended first.
	started, ended func(peer.ID, time.Time)
}

func newAsks(g GossipParams, trusted func(peer.ID) bool) *asks {
	return &asks{large: g.LargeBytes, hold: g.AskHold, minRate: g.AskMinRate, trusted: trusted,
		reads: map[*readStream]struct{}{}, counted: map[peer.ID]time.Time{}}
}

// receiving reports whether a counted frame is arriving at now: begun
// less than hold ago and, past askGrace, on track to be whole within
// hold of its start and arriving at minRate or more. A frame that stops
// counting is forgotten.
func (a *asks) receiving(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	on := false
	for r := range a.reads {
		if a.onTrack(r, now) {
			on = true
		} else {
			r.counting.Store(false)
			delete(a.reads, r)
		}
	}
	return on
}

// onTrack: a frame whose IWANTs are held back must arrive within hold,
// pubsub's follow-up time for an IWANT (3 s by default), so that an
// IWANT for it left out is not counted against its advertiser.
func (a *asks) onTrack(r *readStream, now time.Time) bool {
	d := now.Sub(r.since)
	if d >= a.hold {
		return false
	}
	judged := (d - askGrace).Seconds()
	rate := max(float64(a.minRate), float64(r.size)/(a.hold-askGrace).Seconds())
	return judged <= 0 || float64(r.read) >= rate*judged
}

// count starts counting r's frame of size bytes from its peer at now,
// unless that peer's last counted frame began less than two holds ago.
func (a *asks) count(r *readStream, size uint64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if last, ok := a.counted[r.from]; ok && now.Sub(last) < 2*a.hold {
		return
	}
	if len(a.counted) >= maxCountedPeers {
		for p, t := range a.counted {
			if now.Sub(t) >= 2*a.hold {
				delete(a.counted, p)
			}
		}
	}
	a.counted[r.from] = now
	r.since, r.size, r.read = now, size, 0
	r.counting.Store(true)
	a.reads[r] = struct{}{}
	if a.began != nil {
		a.began(r.from)
	}
}

// maxCountedPeers is when the peers' last counted frames are swept: only
// validators' frames count, so it is about the size of a set.
const maxCountedPeers = 1024

// filter is frame (a varint-delimited RPC) without its IWANTs when a
// large frame is arriving, nil if nothing else is left to say, and
// whether it changed. A frame it cannot read goes as it is.
func (a *asks) filter(frame []byte, now time.Time) ([]byte, bool) {
	if !a.holds(frame, now) {
		return frame, false
	}
	return rewrite(frame, a.dropIWants)
}

// holds reports whether frame's IWANTs are to be left out at now.
func (a *asks) holds(frame []byte, now time.Time) bool {
	return a != nil && hasIWant(frame) && a.receiving(now)
}

// dropIWants leaves rpc's IWANTs out, and counts them.
func (a *asks) dropIWants(rpc *pb.RPC) bool {
	if len(rpc.GetControl().GetIwant()) == 0 {
		return false
	}
	for _, w := range rpc.Control.Iwant {
		a.held.Add(uint64(len(w.GetMessageIDs())))
	}
	rpc.Control.Iwant = nil
	if proto.Size(rpc.Control) == 0 {
		rpc.Control = nil
	}
	return true
}

// RPC and ControlMessage field numbers (pubsub's rpc.proto).
const (
	rpcControlField   = 3
	controlIWantField = 2
)

// hasIWant reports whether frame, a varint-delimited RPC, asks for
// anything, reading only field tags: most RPCs do not.
func hasIWant(frame []byte) bool {
	_, n := binary.Uvarint(frame)
	if n <= 0 {
		return false
	}
	found := false
	eachField(frame[n:], func(num protowire.Number, v []byte) {
		if num == rpcControlField {
			eachField(v, func(num protowire.Number, _ []byte) { found = found || num == controlIWantField })
		}
	})
	return found
}

// eachField calls f with each field of the message b and, for a
// length-delimited one, its contents; it stops at anything malformed.
func eachField(b []byte, f func(protowire.Number, []byte)) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			if v, n = protowire.ConsumeBytes(b); n < 0 {
				return
			}
		} else if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return
		}
		f(num, v)
		b = b[n:]
	}
}

// readStream follows the varint-delimited frames read on an inbound
// stream: while it is in the middle of a large one, it is in a.reads.
type readStream struct {
	network.Stream
	a    *asks
	from peer.ID

	hdr       []byte      // a frame's length, while it is read
	remaining uint64      // bytes of the current frame still to come
	large     atomic.Bool // the current frame is large (started heard of it)
	counting  atomic.Bool // the current frame is in a.reads (set under a.mu)
	since     time.Time
	size      uint64 // the current counted frame's length
	read      uint64 // bytes of it read so far
}

func (s *readStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.follow(p[:n], time.Now())
	}
	if err != nil {
		s.end()
	}
	return n, err
}

func (s *readStream) Close() error { s.end(); return s.Stream.Close() }
func (s *readStream) Reset() error { s.end(); return s.Stream.Reset() }

func (s *readStream) end() {
	s.a.mu.Lock()
	s.counting.Store(false)
	delete(s.a.reads, s)
	s.a.mu.Unlock()
	s.endLarge(time.Now())
}

// endLarge tells ended that the current large frame is over, once (a
// stream may be closed on another goroutine than the one reading it).
func (s *readStream) endLarge(now time.Time) {
	if s.large.CompareAndSwap(true, false) && s.a.ended != nil {
		s.a.ended(s.from, now)
	}
}

// follow moves the frame state over b, read at now.
func (s *readStream) follow(b []byte, now time.Time) {
	for len(b) > 0 {
		if s.remaining == 0 {
			b = s.header(b, now)
			continue
		}
		k := min(uint64(len(b)), s.remaining)
		s.remaining -= k
		b = b[k:]
		s.add(k)
		if s.remaining == 0 {
			s.endLarge(now)
		}
	}
}

// add counts k more bytes of the current frame, if it is counted.
func (s *readStream) add(k uint64) {
	if !s.counting.Load() { // most frames: no lock
		return
	}
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	if !s.counting.Load() {
		return
	}
	s.read += k
	if s.remaining == 0 {
		s.counting.Store(false)
		delete(s.a.reads, s)
	}
}

// header consumes a byte of a frame's length from b; once the length is
// whole, a large frame starts counting.
func (s *readStream) header(b []byte, now time.Time) []byte {
	s.hdr = append(s.hdr, b[0])
	size, n := binary.Uvarint(s.hdr)
	if n == 0 && len(s.hdr) < binary.MaxVarintLen64 {
		return b[1:]
	}
	s.hdr = s.hdr[:0]
	if n > 0 && size > 0 {
		s.remaining = size
		if size >= uint64(s.a.large) {
			if s.a.started != nil {
				s.a.started(s.from, now)
			}
			s.large.Store(true) // after started: a Reset elsewhere ends it after it began
			if s.a.trusted == nil || s.a.trusted(s.from) {
				s.a.count(s, size, now)
			}
		}
	}
	return b[1:]
}

// following is handler, its streams followed by a; handler itself when
// IWANTs are not held (a is nil).
func (a *asks) following(handler network.StreamHandler) network.StreamHandler {
	if a == nil {
		return handler
	}
	// A pointer: pubsub and unicast compare and key streams.
	return func(s network.Stream) { handler(&readStream{Stream: s, a: a, from: s.Conn().RemotePeer()}) }
}

// FollowReads is h whose inbound streams' large frames, from validators,
// hold this node's IWANTs back while they arrive, for another router's protocols (RainTree
// brings validators their blocks); h itself when IWANTs are not held
// (AskHold 0, or not lazy gossip).
func (r *Router) FollowReads(h host.Host) host.Host {
	u := r.up.Load()
	if u == nil || u.asks == nil {
		return h
	}
	return readingHost{Host: h, a: u.asks}
}

// readingHost is a host whose handlers' streams are followed by a.
type readingHost struct {
	host.Host
	a *asks
}

func (h readingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.a.following(handler))
}

func (h readingHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, h.a.following(handler))
}
