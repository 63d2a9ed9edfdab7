package p2p_test

import (
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	lpnet "github.com/libp2p/go-libp2p/core/network"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// BenchmarkConnectionMemory measures what one open connection with one
// open stream costs in heap and goroutine stacks, both ends together, over
// TCP+yamux and over QUIC on loopback: a hub dials b.N hosts, as a
// validator keeps a connection to each RainTree neighbour. It reports
// heap-B/conn and stack-B/conn; docs/MEMORY.md quotes it.
//
//	go test -run '^$' -bench ConnectionMemory -benchtime 200x ./p2p
func BenchmarkConnectionMemory(b *testing.B) {
	for _, tr := range []struct {
		name, listen string
		opt          libp2p.Option
	}{
		{"tcp-yamux", "/ip4/127.0.0.1/tcp/0", libp2p.Transport(tcp.NewTCPTransport)},
		{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", libp2p.Transport(quic.NewTransport)},
	} {
		b.Run(tr.name, func(b *testing.B) {
			newHost := func() host.Host {
				h, err := libp2p.New(libp2p.NoTransports, tr.opt, libp2p.ListenAddrStrings(tr.listen),
					libp2p.DisableRelay(), libp2p.DisableMetrics(),
					libp2p.ResourceManager(&lpnet.NullResourceManager{}))
				if err != nil {
					b.Fatal(err)
				}
				return h
			}
			hub := newHost()
			defer hub.Close()
			hub.SetStreamHandler("/mem/1", func(s lpnet.Stream) { _, _ = io.Copy(io.Discard, s) })
			peers := make([]host.Host, b.N)
			for i := range peers {
				peers[i] = newHost()
				defer peers[i].Close()
				peers[i].SetStreamHandler("/mem/1", func(s lpnet.Stream) { _, _ = io.Copy(io.Discard, s) })
			}
			before := memNow()
			b.ResetTimer()
			ctx := context.Background()
			var streams []lpnet.Stream
			for _, p := range peers {
				if err := hub.Connect(ctx, p.Peerstore().PeerInfo(p.ID())); err != nil {
					b.Fatal(err)
				}
				s, err := hub.NewStream(ctx, p.ID(), "/mem/1")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Write([]byte("hello")); err != nil {
					b.Fatal(err)
				}
				streams = append(streams, s)
			}
			b.StopTimer()
			after := memNow()
			b.ReportMetric(float64(after.heap-before.heap)/float64(b.N), "heap-B/conn")
			b.ReportMetric(float64(after.stack-before.stack)/float64(b.N), "stack-B/conn")
			b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(b.N), "goroutines/conn")
			for _, s := range streams {
				_ = s.Close()
			}
		})
	}
}

type memReading struct{ heap, stack, goroutines int64 }

func memNow() memReading {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memReading{int64(ms.HeapAlloc), int64(ms.StackInuse), int64(runtime.NumGoroutine())}
}
