package sim

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// wireCounter counts what the routers write on their streams, summed over
// every host of one simulated network. Payload copies are recognised by
// decoding the byte stream of each protocol, so the count does not depend
// on router internals: RainTree frames of kind BROADCAST, the Publish
// entries of pubsub RPCs (gossip forwards and IWANT answers alike), and
// the background unicast frames that carry an envelope (a full node's
// submission). ACKs, subscriptions, GRAFT/PRUNE, IHAVE/IWANT, proofs and
// busy notices count as wire bytes only.
type wireCounter struct {
	rainProtocol, backgroundUnicast protocol.ID
	payloadMsgs                     atomic.Int64
	payloadBytes                    atomic.Int64
	wireBytes                       atomic.Int64
	undecodable                     atomic.Int64 // frames the counter could not parse
	// routerReadBytes counts bytes read on RainTree and pubsub streams:
	// it moves while a large payload is still crossing a slow link,
	// before any frame is complete.
	routerReadBytes atomic.Int64
	// validators are the set's peer IDs: payload copies are also counted
	// by the role of the node they are written to.
	validators                atomic.Pointer[map[peer.ID]bool]
	toValidators, toFullNodes atomic.Int64
}

// snapshot is a reading of the counters.
type wireSnapshot struct {
	payloadMsgs, payloadBytes, wireBytes int64
	toValidators, toFullNodes            int64 // payload copies by recipient role
}

func (c *wireCounter) snapshot() wireSnapshot {
	return wireSnapshot{c.payloadMsgs.Load(), c.payloadBytes.Load(), c.wireBytes.Load(),
		c.toValidators.Load(), c.toFullNodes.Load()}
}

func (s wireSnapshot) sub(o wireSnapshot) wireSnapshot {
	return wireSnapshot{s.payloadMsgs - o.payloadMsgs, s.payloadBytes - o.payloadBytes, s.wireBytes - o.wireBytes,
		s.toValidators - o.toValidators, s.toFullNodes - o.toFullNodes}
}

// payloadCopy counts one payload copy written to the peer at the other end
// of s.
func (s *countingStream) payloadCopy(size int64) {
	s.c.payloadMsgs.Add(1)
	s.c.payloadBytes.Add(size)
	if vals := s.c.validators.Load(); vals != nil && (*vals)[s.Conn().RemotePeer()] {
		s.c.toValidators.Add(1)
	} else {
		s.c.toFullNodes.Add(1)
	}
}

// countingHost hands the module streams whose writes are counted, in both
// directions: streams it opens and streams its handlers accept.
type countingHost struct {
	host.Host
	c *wireCounter
}

func (h *countingHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.c.wrap(s), nil
}

func (h *countingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.c.wrap(s)) })
}

func (h *countingHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(h.c.wrap(s)) })
}

type frameKind int

const (
	framesOther frameKind = iota
	framesRainTree
	framesPubSub
	// framesBackgroundUnicast: background direct sends and full nodes'
	// submissions (a payload copy each), proofs and busy notices.
	framesBackgroundUnicast
)

func (c *wireCounter) wrap(s network.Stream) network.Stream {
	kind := framesOther
	switch p := string(s.Protocol()); {
	case protocol.ID(p) == c.rainProtocol:
		kind = framesRainTree
	case protocol.ID(p) == c.backgroundUnicast:
		kind = framesBackgroundUnicast
	case strings.HasPrefix(p, "/meshsub/"), strings.HasPrefix(p, "/floodsub/"), strings.HasPrefix(p, "/randomsub/"):
		kind = framesPubSub
	}
	return &countingStream{Stream: s, c: c, kind: kind}
}

// countingStream splits what is written into uvarint-length-prefixed
// frames, the framing of RainTree's and the background's unicast and of
// pubsub.
type countingStream struct {
	network.Stream
	c    *wireCounter
	kind frameKind
	mu   sync.Mutex
	buf  []byte
}

func (s *countingStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if n > 0 {
		s.c.wireBytes.Add(int64(n))
		if s.kind != framesOther {
			s.mu.Lock()
			s.buf = append(s.buf, p[:n]...)
			s.consumeLocked()
			s.mu.Unlock()
		}
	}
	return n, err
}

func (s *countingStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 && s.kind != framesOther {
		s.c.routerReadBytes.Add(int64(n))
	}
	return n, err
}

func (s *countingStream) consumeLocked() {
	for {
		size, hdr := binary.Uvarint(s.buf)
		if hdr <= 0 || uint64(len(s.buf)-hdr) < size {
			return
		}
		end := hdr + int(size)
		s.count(s.buf[hdr:end], end)
		s.buf = s.buf[:copy(s.buf, s.buf[end:])]
	}
}

func (s *countingStream) count(frame []byte, wireLen int) {
	switch s.kind {
	case framesRainTree:
		var m wire.RainTreeMessage
		if err := proto.Unmarshal(frame, &m); err != nil {
			s.c.undecodable.Add(1)
			return
		}
		if m.GetKind() == wire.RainTreeKind_RAIN_TREE_KIND_BROADCAST {
			s.payloadCopy(int64(wireLen))
		}
	case framesPubSub:
		var rpc pb.RPC
		if err := proto.Unmarshal(frame, &rpc); err != nil {
			s.c.undecodable.Add(1)
			return
		}
		for _, m := range rpc.GetPublish() {
			s.payloadCopy(int64(proto.Size(m)))
		}
	case framesBackgroundUnicast:
		envelope, err := wire.CarriesEnvelope(frame)
		if err != nil {
			s.c.undecodable.Add(1)
			return
		}
		if envelope { // not a proof, nor a busy notice
			s.payloadCopy(int64(wireLen))
		}
	}
}
