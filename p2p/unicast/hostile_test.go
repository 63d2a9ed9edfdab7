package unicast

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// protocolMemory is what b's resource manager holds on testProto, over all
// peers: the frames being read.
func protocolMemory(t testing.TB, h host.Host) int64 {
	t.Helper()
	var mem int64
	err := h.Network().ResourceManager().ViewProtocol(testProto, func(s network.ProtocolScope) error {
		mem = s.Stat().Memory
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

func TestAStalledFrameIsChargedForWhatArrivedAndDroppedAtItsDeadline(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	rb := newRouter(t, hb, func(peer.ID, []byte) {}, func(c *Config) {
		// Long enough for 300 KiB to arrive on a loaded machine before it
		// fires; the frame deadline, not idleness, must end the frame.
		c.FrameTimeout = 3 * time.Second
		c.IdleTimeout = time.Hour
	})
	learn(ha, hb)
	ctx := ctxT(t)
	raw, err := ha.NewStream(ctx, hb.ID(), testProto)
	if err != nil {
		t.Fatal(err)
	}
	const sent = 300 << 10
	// Declare the largest frame, send 300 KiB of it, stall.
	if _, err := raw.Write(append(binary.AppendUvarint(nil, DefaultMaxMessageSize), make([]byte, sent)...)); err != nil {
		t.Fatal(err)
	}
	var held int64
	waitFor(t, func() bool { held = protocolMemory(t, hb); return held >= sent })
	if held > sent+chunkSize+64<<10 {
		t.Fatalf("receiver holds %d bytes for %d sent (declared %d)", held, sent, DefaultMaxMessageSize)
	}
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(raw); !errors.Is(err, network.ErrReset) {
		t.Fatalf("raw stream read: %v, want a reset at the frame deadline", err)
	}
	waitFor(t, func() bool { return protocolMemory(t, hb) == 0 })
	// The strike is recorded just after the frame gives up.
	waitFor(t, func() bool { s := rb.Stats(); return s.FrameTimeouts == 1 && s.Strikes == 1 })
}

func TestRepeatedMalformedFramesResetStreamsThenCloseTheConnection(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	rb := newRouter(t, hb, func(peer.ID, []byte) {}, func(c *Config) { c.MalformedLimit = 3 })
	learn(ha, hb)
	ctx := ctxT(t)
	garbage := [][]byte{
		binary.AppendUvarint(nil, 0),                                       // an empty frame
		binary.AppendUvarint(nil, 1<<40),                                   // far over the limit
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // no valid uvarint
	}
	for i, g := range garbage {
		raw, err := ha.NewStream(ctx, hb.ID(), testProto)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		if _, err := raw.Write(g); err != nil {
			t.Fatal(err)
		}
		_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(raw); err == nil {
			t.Fatalf("stream %d: garbage did not end the stream with an error", i)
		}
		if i < len(garbage)-1 && hb.Network().Connectedness(ha.ID()) != network.Connected {
			t.Fatalf("disconnected after %d malformed frames, limit 3", i+1)
		}
	}
	waitFor(t, func() bool { return hb.Network().Connectedness(ha.ID()) != network.Connected })
	s := rb.Stats()
	if s.Strikes != 3 || s.PeersDisconnected != 1 || s.ProtocolErrors != 2 || s.DroppedOversizeIn != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Peers that each send one bad frame fill the strike records; past
// MaxStrikeRecords the router forgets one and counts it, and the records
// stay bounded.
func TestStrikeRecordsAreBoundedAndForgettingIsCounted(t *testing.T) {
	hb := newHost(t, transports[0].addr, nil)
	rb := newRouter(t, hb, func(peer.ID, []byte) {}, func(c *Config) { c.MaxStrikeRecords = 2 })
	ctx := ctxT(t)
	for i := range 3 {
		ha := newHost(t, transports[0].addr, nil)
		learn(ha, hb)
		raw, err := ha.NewStream(ctx, hb.ID(), testProto)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		if _, err := raw.Write(binary.AppendUvarint(nil, 0)); err != nil { // an empty frame
			t.Fatal(err)
		}
		waitFor(t, func() bool { return rb.Stats().Strikes == uint64(i+1) })
	}
	if s := rb.Stats(); s.StrikesForgotten != 1 || s.PeersDisconnected != 0 {
		t.Fatalf("stats %+v, want one forgotten record and nobody disconnected", s)
	}
	rb.strikes.mu.Lock()
	defer rb.strikes.mu.Unlock()
	if n := len(rb.strikes.m); n > 2 {
		t.Fatalf("%d strike records kept, MaxStrikeRecords 2", n)
	}
}

func TestPenalizeCountsTowardsTheLimit(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	var rb *Router
	rb = newRouter(t, hb, func(from peer.ID, data []byte) {
		if string(data) == "bad" {
			rb.Penalize(from)
		}
	}, func(c *Config) { c.MalformedLimit = 2 })
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	learn(ha, hb)
	ctx := ctxT(t)
	for range 2 {
		if err := ra.Send(ctx, hb.ID(), []byte("bad")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return hb.Network().Connectedness(ha.ID()) != network.Connected })
	if s := rb.Stats(); s.Penalized != 2 || s.PeersDisconnected != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Attack: a peer writes back on the stream a router opened to it, where
// nothing is ever to come. Its first byte ends the stream and costs it a
// strike, rather than being read and discarded for as long as it sends;
// the next Send opens a fresh stream.
func TestAPeerThatWritesOnOurStreamIsStruck(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	ra := newRouter(t, ha, func(peer.ID, []byte) {})
	hb.SetStreamHandler(testProto, func(s network.Stream) {
		// It answers each stream once the first frame has begun to
		// arrive, so the Send that carried it has returned.
		var b [1]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			return
		}
		_, _ = s.Write(bytes.Repeat([]byte{7}, 64<<10))
		_, _ = io.Copy(io.Discard, s)
	})
	learn(ha, hb)
	ctx := ctxT(t)
	if err := ra.Send(ctx, hb.ID(), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ra.Stats().Strikes == 1 })
	if s := ra.Stats(); s.ProtocolErrors != 1 {
		t.Fatalf("protocol errors %d, want 1", s.ProtocolErrors)
	}
	// The struck stream is dead before the strike is counted, so one
	// Send now opens the next (whose peer strikes again, later).
	if err := ra.Send(ctx, hb.ID(), []byte("again")); err != nil {
		t.Fatal(err)
	}
	if n := ra.Stats().StreamsOpened; n != 2 {
		t.Fatalf("%d streams opened, want 2", n)
	}
}

// Attack: a peer that takes our streams and neither reads nor closes them
// makes each Send time out, and each timed-out Send retires its stream.
// A retired stream, and the goroutine watching it, lasts only FrameTimeout
// more: it used to last as long as the connection, one more for every
// Send, until the protocol's stream limit refused streams to anyone.
func TestStreamsRetiredOnAPeerThatNeverReadsDoNotPileUp(t *testing.T) {
	ha, hb := newHost(t, transports[0].addr, nil), newHost(t, transports[0].addr, nil)
	learn(ha, hb)
	held := make(chan network.Stream, 64)
	hb.SetStreamHandler(testProto, func(s network.Stream) { held <- s }) // never read, never closed
	t.Cleanup(func() {
		for {
			select {
			case s := <-held:
				_ = s.Reset()
			default:
				return
			}
		}
	})
	ra := newRouter(t, ha, func(peer.ID, []byte) {}, func(c *Config) {
		c.WriteTimeout, c.FrameTimeout = 200*time.Millisecond, 500*time.Millisecond
	})
	const sends = 10
	for i := range sends {
		if err := ra.Send(t.Context(), hb.ID(), make([]byte, 2<<20)); err == nil {
			t.Fatalf("send %d went through to a peer that does not read", i)
		}
	}
	tracked := func() int {
		ra.mu.Lock()
		defer ra.mu.Unlock()
		return len(ra.streams)
	}
	if n := tracked(); n < 2 {
		t.Fatalf("%d streams tracked right after %d timed-out sends; the test would prove nothing", n, sends)
	}
	waitFor(t, func() bool { return tracked() == 0 })
}
