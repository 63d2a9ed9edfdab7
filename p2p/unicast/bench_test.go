package unicast

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

const (
	benchSPMProto = protocol.ID("/rainp2p/bench/stream-per-message/1")
	benchRawProto = protocol.ID("/rainp2p/bench/raw/1")
)

// The loops below use b.N rather than b.Loop because b.Loop stops the timer
// when it returns, and the wait for the receiver must be timed.

// benchCounter lets a benchmark wait until the receiver has taken in a
// target amount (messages or bytes).
type benchCounter struct {
	n      atomic.Int64
	target atomic.Int64
	done   atomic.Pointer[chan struct{}]
}

func (c *benchCounter) reset(target int64) {
	done := make(chan struct{})
	c.n.Store(0)
	c.target.Store(target)
	c.done.Store(&done)
}

func (c *benchCounter) add(d int64) {
	if d > 0 && c.n.Add(d) == c.target.Load() {
		close(*c.done.Load())
	}
}

func (c *benchCounter) wait(b *testing.B) {
	select {
	case <-*c.done.Load():
	case <-time.After(time.Minute):
		b.Fatalf("receiver got %d of %d", c.n.Load(), c.target.Load())
	}
}

func BenchmarkUnicast(b *testing.B) {
	ha, hb := newHost(b, transports[0].addr, nil), newHost(b, transports[0].addr, nil)
	learn(ha, hb)
	ctx := context.Background()
	if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
		b.Fatal(err)
	}
	var recv benchCounter

	ra := newRouter(b, ha, func(peer.ID, []byte) {})
	newRouter(b, hb, func(peer.ID, []byte) { recv.add(1) })

	// Baseline: one stream per message, same framing, the sender waits for
	// the receiver to finish with the stream.
	hb.SetStreamHandler(benchSPMProto, func(s network.Stream) {
		if _, err := ReadFrame(bufio.NewReader(s), DefaultMaxMessageSize); err != nil {
			_ = s.Reset()
			return
		}
		recv.add(1)
		_ = s.Close()
	})
	// Ceiling: bytes on one plain stream.
	hb.SetStreamHandler(benchRawProto, func(s network.Stream) {
		buf := make([]byte, 64<<10)
		for {
			n, err := s.Read(buf)
			recv.add(int64(n))
			if err != nil {
				_ = s.Reset()
				return
			}
		}
	})
	b.Cleanup(func() {
		hb.RemoveStreamHandler(benchSPMProto)
		hb.RemoveStreamHandler(benchRawProto)
	})

	sizes := []struct {
		name string
		n    int
	}{{"100B", 100}, {"10KB", 10 << 10}, {"1MB", 1 << 20}}
	modes := []struct {
		name string
		run  func(b *testing.B, data []byte)
	}{
		{"framed", func(b *testing.B, data []byte) {
			recv.reset(int64(b.N))
			for range b.N {
				if err := ra.Send(ctx, hb.ID(), data); err != nil {
					b.Fatal(err)
				}
			}
			recv.wait(b)
		}},
		{"stream-per-message", func(b *testing.B, data []byte) {
			recv.reset(int64(b.N))
			for range b.N {
				if err := sendOnNewStream(ctx, ha, hb.ID(), data); err != nil {
					b.Fatal(err)
				}
			}
			recv.wait(b)
		}},
		{"raw-stream", func(b *testing.B, data []byte) {
			s, err := ha.NewStream(ctx, hb.ID(), benchRawProto)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			recv.reset(int64(b.N) * int64(len(data)))
			b.ResetTimer()
			for range b.N {
				if _, err := s.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			recv.wait(b)
		}},
	}
	for _, size := range sizes {
		data := make([]byte, size.n)
		for _, mode := range modes {
			b.Run(fmt.Sprintf("size=%s/%s", size.name, mode.name), func(b *testing.B) {
				b.SetBytes(int64(size.n))
				b.ReportAllocs()
				mode.run(b, data)
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

func sendOnNewStream(ctx context.Context, h host.Host, to peer.ID, data []byte) error {
	s, err := h.NewStream(ctx, to, benchSPMProto)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(s)
	if err := WriteFrame(w, data, DefaultMaxMessageSize); err != nil {
		_ = s.Reset()
		return err
	}
	if err := w.Flush(); err != nil {
		_ = s.Reset()
		return err
	}
	_ = s.CloseWrite()
	// The receiver closes after reading the frame; EOF is its acknowledgement.
	if _, err := io.Copy(io.Discard, s); err != nil {
		_ = s.Reset()
		return err
	}
	return s.Close()
}
