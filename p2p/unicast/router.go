package unicast

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Sentinel errors callers can branch on with errors.Is.
var (
	ErrTooLarge = errors.New("unicast: message too large")
	ErrEmpty    = errors.New("unicast: empty message")
	ErrClosed   = errors.New("unicast: router closed")
)

// Buffer sizes for the per-stream bufio reader and writer. Large enough to
// batch a header with a small payload into one transport write; payloads
// bigger than the buffer bypass it. A validator keeps a stream to and from
// each RainTree neighbour (up to about 70 at 10^6 validators), so every
// KiB here costs it about 70 KiB (docs/MEMORY.md).
const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
)

// Handler receives one inbound message. It is called from the read
// goroutine of the stream the message arrived on, so messages from one
// sender arrive in order, and a Handler that blocks stalls that sender (and,
// through flow control, its Sends). data is only valid until the Handler
// returns: the read loop reuses buffers, so a Handler that keeps the bytes
// must copy them (decoding them into a protobuf message does). It must not
// call Close.
type Handler func(from peer.ID, data []byte)

// Router sends and receives framed messages on one protocol ID. It is safe
// for concurrent use. It keeps a small entry for every peer it has sent to;
// the stream and its write buffer are released when the stream ends.
type Router struct {
	host    host.Host
	cfg     Config
	handler Handler
	log     *slog.Logger

	mu      sync.Mutex
	closed  bool
	peers   map[peer.ID]*outPeer
	streams map[network.Stream]struct{} // live streams, reset by Close
	wg      sync.WaitGroup              // inbound read loops and outbound watchers

	pools   *framePools
	strikes *strikes
	c       counters
}

// outPeer serializes Sends to one peer. sem is a one-slot semaphore rather
// than a mutex so that waiting for it honours the caller's context. An
// outPeer is forgotten once it has no stream and no Send using it, so the
// map holds no more peers than there are streams and Sends.
type outPeer struct {
	sem   chan struct{}
	cur   *outStream // guarded by sem
	users int        // Sends between peer and release; guarded by Router.mu
}

type outStream struct {
	s    network.Stream
	w    *bufio.Writer
	dead atomic.Bool // the peer closed or reset the stream
}

// New registers the stream handler for cfg.ProtocolID on h and returns a
// Router that delivers inbound messages to handler.
func New(h host.Host, cfg Config, handler Handler) (*Router, error) {
	if h == nil {
		return nil, errors.New("unicast: nil host")
	}
	if handler == nil {
		return nil, errors.New("unicast: nil handler")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Router{
		host:    h,
		cfg:     cfg,
		handler: handler,
		log:     log.With("protocol", string(cfg.ProtocolID)),
		peers:   make(map[peer.ID]*outPeer),
		streams: make(map[network.Stream]struct{}),
		pools:   newFramePools(cfg.MaxMessageSize),
		strikes: newStrikes(cfg.MalformedLimit, cfg.MalformedWindow, cfg.MaxStrikeRecords),
	}
	h.SetStreamHandler(cfg.ProtocolID, r.handleStream)
	return r, nil
}

// Send writes data as one frame on the stream to peer to, opening the
// stream (and dialing) if there is none. If the cached stream turns out to
// be broken, Send reopens it and retries once. Frames to one peer are
// written in the order their Sends acquire the per-peer lock.
//
// A nil error means the frame was handed to the transport, not that the
// peer processed it.
func (r *Router) Send(ctx context.Context, to peer.ID, data []byte) (err error) {
	defer func() {
		if err != nil {
			r.c.sendErrors.Add(1)
		}
	}()
	if len(data) == 0 {
		return ErrEmpty
	}
	if len(data) > r.cfg.MaxMessageSize {
		r.c.droppedOversizeOut.Add(1)
		return fmt.Errorf("sending %d bytes to %s, limit %d: %w", len(data), to, r.cfg.MaxMessageSize, ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sending to %s: %w", to, err)
	}
	p, err := r.peer(to)
	if err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		r.release(to, p, false)
		return fmt.Errorf("sending to %s: waiting for stream: %w", to, ctx.Err())
	}
	defer r.release(to, p, true)

	st, fresh, err := r.stream(ctx, to, p)
	if err != nil {
		return r.sendError(ctx, to, err)
	}
	err = r.writeFrame(ctx, st, data)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			// The transport is fine, this Send ran out of time. Close
			// gracefully: frames earlier Sends already handed over are
			// still delivered, and the receiver drops only this partial
			// one. A Reset would discard them all.
			r.retire(p, st)
			return r.sendError(ctx, to, err)
		}
		r.drop(p, st)
		if fresh || r.isClosed() {
			return r.sendError(ctx, to, err)
		}
		r.log.Debug("stream broken, reopening", "peer", to, "err", err)
		r.c.reconnects.Add(1)
		if st, _, err = r.stream(ctx, to, p); err != nil {
			return r.sendError(ctx, to, err)
		}
		if err = r.writeFrame(ctx, st, data); err != nil {
			r.drop(p, st)
			return r.sendError(ctx, to, err)
		}
	}
	r.c.framesSent.Add(1)
	r.c.bytesSent.Add(uint64(len(data)))
	return nil
}

// Close removes the stream handler, resets every stream and waits for the
// goroutines reading them. Sends after Close return ErrClosed. It is
// idempotent and always returns nil.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	streams := make([]network.Stream, 0, len(r.streams))
	for s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()

	r.host.RemoveStreamHandler(r.cfg.ProtocolID)
	for _, s := range streams {
		_ = s.Reset()
	}
	r.wg.Wait()
	return nil
}

func (r *Router) peer(id peer.ID) (*outPeer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	p, ok := r.peers[id]
	if !ok {
		p = &outPeer{sem: make(chan struct{}, 1)}
		r.peers[id] = p
	}
	p.users++
	return p, nil
}

// release ends a Send's use of p, giving up p.sem if it holds it, and
// forgets p when nothing uses it and it has no live stream.
func (r *Router) release(id peer.ID, p *outPeer, holds bool) {
	if holds {
		<-p.sem
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p.users--
	r.forgetLocked(id, p)
}

// forgetIdle forgets id's outPeer once its stream has ended, unless a
// Send is using it.
func (r *Router) forgetIdle(id peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.peers[id]; ok {
		r.forgetLocked(id, p)
	}
}

// forgetLocked deletes id's p when no Send uses it and its stream, if
// any, has ended. With no users p.sem is free (Sends give it up before
// taking r.mu); taking it here lets p.cur be read. r.mu is held.
func (r *Router) forgetLocked(id peer.ID, p *outPeer) {
	if p.users > 0 || r.peers[id] != p {
		return
	}
	select {
	case p.sem <- struct{}{}:
		if p.cur == nil || p.cur.dead.Load() {
			delete(r.peers, id)
		}
		<-p.sem
	default:
	}
}

// stream returns the cached outbound stream to id or opens a new one.
// fresh reports whether it was just opened. The caller holds p.sem.
func (r *Router) stream(ctx context.Context, id peer.ID, p *outPeer) (st *outStream, fresh bool, err error) {
	if p.cur != nil {
		if !p.cur.dead.Load() {
			return p.cur, false, nil
		}
		r.drop(p, p.cur)
		r.c.reconnects.Add(1)
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	s, err := r.host.NewStream(dctx, id, r.cfg.ProtocolID)
	if err != nil {
		return nil, false, fmt.Errorf("opening stream: %w", err)
	}
	if !r.track(s) {
		_ = s.Reset()
		return nil, false, ErrClosed
	}
	r.c.streamsOpened.Add(1)
	st = &outStream{s: s, w: bufio.NewWriterSize(s, writeBufSize)}
	go r.watch(st)
	p.cur = st
	r.log.Debug("opened stream", "peer", id)
	return st, true, nil
}

// watch waits for the peer to end an outbound stream. The peer never writes
// on it, so any return from Read means the stream is over; marking it dead
// lets the next Send reopen instead of writing into a reset stream. A peer
// that does write on it breaks the protocol: its first byte is a strike
// and ends the stream, rather than being read and thrown away for as long
// as it cares to send.
func (r *Router) watch(st *outStream) {
	defer r.wg.Done()
	defer r.untrack(st.s)
	var b [1]byte
	n, err := st.s.Read(b[:])
	st.dead.Store(true)
	_ = st.s.Reset()
	id := st.s.Conn().RemotePeer()
	if n > 0 {
		r.c.protocolErrors.Add(1)
		r.strike(id)
	}
	r.forgetIdle(id)
	r.log.Debug("outbound stream ended", "peer", id, "err", err)
}

func (r *Router) drop(p *outPeer, st *outStream) {
	st.dead.Store(true)
	_ = st.s.Reset()
	if p.cur == st {
		p.cur = nil
	}
}

// retire stops using st but lets the peer read what it already holds: only
// the write side closes, and the watcher resets the stream once the peer
// has ended its side, or FrameTimeout has passed: a peer that neither
// reads nor closes would otherwise keep a stream and a watcher for every
// Send that timed out, for as long as the connection lasts.
func (r *Router) retire(p *outPeer, st *outStream) {
	st.dead.Store(true)
	_ = st.s.CloseWrite()
	_ = st.s.SetReadDeadline(time.Now().Add(r.cfg.FrameTimeout))
	if p.cur == st {
		p.cur = nil
	}
}

// writeFrame writes and flushes one frame under a deadline that is the
// earlier of WriteTimeout and ctx's deadline, and that fires early if ctx is
// cancelled.
func (r *Router) writeFrame(ctx context.Context, st *outStream, data []byte) error {
	deadline := time.Now().Add(r.cfg.WriteTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := st.s.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = st.s.SetWriteDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			// Wait for a callback already running, so it cannot cut short
			// the next Send's deadline on this stream.
			if !stop() {
				<-fired
			}
		}()
	}
	if err := WriteFrame(st.w, data, r.cfg.MaxMessageSize); err != nil {
		return err
	}
	return st.w.Flush()
}

func (r *Router) handleStream(s network.Stream) {
	if !r.track(s) {
		_ = s.Reset()
		return
	}
	defer r.wg.Done()
	defer r.untrack(s)
	r.c.streamsAccepted.Add(1)
	from := s.Conn().RemotePeer()
	prio := uint8(network.ReservationPriorityLow)
	if r.cfg.Trusted != nil && r.cfg.Trusted(from) {
		prio = network.ReservationPriorityAlways
	}
	var mem memory = noMemory{}
	if sc := s.Scope(); sc != nil {
		mem = sc
	}
	fr := newFrameReader(bufio.NewReaderSize(s, readBufSize), r.cfg.MaxMessageSize, mem, prio, r.pools)
	defer fr.close()
	// The whole-frame deadline starts at the header, the idle deadline at
	// the end of the previous frame.
	started := func(int) error { return s.SetReadDeadline(time.Now().Add(r.cfg.FrameTimeout)) }
	for {
		if err := s.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout)); err != nil {
			r.log.Debug("setting read deadline", "peer", from, "err", err)
			_ = s.Reset()
			return
		}
		f, err := fr.next(started)
		if err != nil {
			r.endInbound(s, from, err, fr.inFrame)
			return
		}
		r.c.framesReceived.Add(1)
		r.c.bytesReceived.Add(uint64(len(f.data)))
		r.handler(from, f.data)
		fr.done(&f)
	}
}

// endInbound finishes an inbound stream after reading a frame failed.
// Anything but a clean EOF resets the stream (yamux's CloseRead does not
// tell the sender, who would keep writing into the void), and a malformed
// or stalled frame is a strike against the peer. midFrame says the error
// came inside a frame, so a timeout is the frame deadline, not idleness.
func (r *Router) endInbound(s network.Stream, from peer.ID, err error, midFrame bool) {
	strike := false
	switch {
	case errors.Is(err, io.EOF):
		_ = s.Close()
		r.log.Debug("inbound stream closed by peer", "peer", from)
		return
	case errors.Is(err, ErrTooLarge):
		r.c.droppedOversizeIn.Add(1)
		strike = true
		r.log.Warn("dropping oversized frame, resetting stream", "peer", from, "err", err)
	case errors.Is(err, errNoMemory):
		r.c.droppedNoMemory.Add(1)
		r.log.Warn("frame memory refused, resetting stream", "peer", from, "err", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		// An honest sender whose write timed out closes its side mid-frame
		// (see retire), so truncation alone is no strike.
		r.c.protocolErrors.Add(1)
		r.log.Debug("truncated frame, resetting stream", "peer", from, "err", err)
	case isTimeout(err) && midFrame:
		r.c.frameTimeouts.Add(1)
		strike = true
		r.log.Warn("frame not finished within FrameTimeout, resetting stream", "peer", from)
	case isTimeout(err):
		r.log.Debug("inbound stream idle, resetting", "peer", from)
	case errors.Is(err, ErrEmpty), errors.Is(err, errBadHeader):
		r.c.protocolErrors.Add(1)
		strike = true
		r.log.Warn("protocol error, resetting stream", "peer", from, "err", err)
	default:
		r.log.Debug("inbound stream failed", "peer", from, "err", err)
	}
	_ = s.Reset()
	if strike {
		r.strike(from)
	}
}

// Penalize records a malformed message from p: a Handler calls it for a
// frame whose payload it cannot decode. It counts towards MalformedLimit
// like a malformed frame.
func (r *Router) Penalize(p peer.ID) {
	r.c.penalized.Add(1)
	r.strike(p)
}

func (r *Router) strike(p peer.ID) {
	r.c.strikes.Add(1)
	if !r.strikes.add(p, time.Now()) {
		return
	}
	r.c.peersDisconnected.Add(1)
	r.log.Warn("too many malformed frames, closing connections to peer", "peer", p, "limit", r.cfg.MalformedLimit, "window", r.cfg.MalformedWindow)
	_ = r.host.Network().ClosePeer(p)
}

// track registers a live stream and one goroutine that will serve it,
// unless the Router is closed.
func (r *Router) track(s network.Stream) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.streams[s] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *Router) untrack(s network.Stream) {
	r.mu.Lock()
	delete(r.streams, s)
	r.mu.Unlock()
}

func (r *Router) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// sendError wraps err with the peer and, when the caller's context ended,
// with ctx.Err() so errors.Is(err, context.Canceled) holds even if the
// transport reported something less specific.
func (r *Router) sendError(ctx context.Context, to peer.ID, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sending to %s: %w: %w", to, cerr, err)
	}
	return fmt.Errorf("sending to %s: %w", to, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
