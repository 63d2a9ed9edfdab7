package raintree

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

func TestPacedSendTimeout(t *testing.T) {
	cfg := DefaultConfig(testNetwork)
	const mib = 1 << 20
	tests := []struct {
		name    string
		samples []time.Duration // of 1 MiB frames
		factor  float64
		size    int
		want    time.Duration
	}{
		{"with no sample, SendTimeout", nil, 8, mib, cfg.SendTimeout},
		{"eight times the median pace", []time.Duration{400 * time.Millisecond, 500 * time.Millisecond, 600 * time.Millisecond}, 8, mib, 4 * time.Second},
		{"in proportion to the frame", []time.Duration{500 * time.Millisecond}, 8, mib / 2, 2 * time.Second},
		{"a few slow heads do not move the median", []time.Duration{500 * time.Millisecond, 500 * time.Millisecond, 9 * time.Second}, 8, mib, 4 * time.Second},
		{"never less than SlowSendMin", []time.Duration{time.Millisecond}, 8, mib, cfg.SlowSendMin},
		{"never more than SendTimeout", []time.Duration{5 * time.Second}, 8, mib, cfg.SendTimeout},
		{"off", []time.Duration{500 * time.Millisecond}, 0, mib, cfg.SendTimeout},
		{"frames the window takes whole are no sample", nil, 8, mib, cfg.SendTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p sendPace
			for _, s := range tt.samples {
				p.add(mib, s)
			}
			p.add(paceMinBytes-1, time.Hour) // too small to tell
			c := cfg
			c.SlowSendFactor = tt.factor
			if got := p.timeout(tt.size, c); got != tt.want {
				t.Fatalf("timeout %v, want %v", got, tt.want)
			}
		})
	}
}

// A validator that reads a block far slower than the others holds the
// sender's uplink, which sends one paced frame at a time, only for
// SlowSendFactor times the sender's own pace: the frames behind its own
// go out, its span goes on without it, and it becomes a laggard. Without
// the bound the others waited SendTimeout (a minute here) behind it.
func TestAHeadThatReadsABlockSlowlyHoldsTheUplinkOnlyAtItsPace(t *testing.T) {
	const n, slow = 9, 3
	c := newTCPCluster(t, n, func(cfg *Config) {
		pacedTernary(cfg)
		cfg.SendTimeout, cfg.SlowSendMin, cfg.ACKTimeout = time.Minute, 300*time.Millisecond, time.Second
	})
	// The slow validator's RainTree streams read at full speed at first,
	// then 4 KiB every 50 ms, and never answer.
	var crawling atomic.Bool
	var mu sync.Mutex
	var streams []network.Stream
	var wg sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		mu.Lock()
		for _, s := range streams {
			_ = s.Reset()
		}
		mu.Unlock()
		wg.Wait()
	})
	c.nodes[slow].host.SetStreamHandler(ProtocolID(testNetwork), func(s network.Stream) {
		wg.Add(1)
		defer wg.Done()
		mu.Lock()
		streams = append(streams, s)
		mu.Unlock()
		buf := make([]byte, 4<<10)
		for {
			if crawling.Load() {
				select { // the attacker's pace
				case <-time.After(50 * time.Millisecond):
				case <-stop:
					return
				}
			}
			if _, err := s.Read(buf); err != nil {
				return
			}
		}
	})
	want := others(n, 0)
	want = append(want[:slow-1], want[slow:]...)
	// A block to learn the pace from.
	warm, warmID := newEnvelope(t, c.nodes[0].key, strings.Repeat("w", 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.nodes[0].router.Broadcast(ctx, warm); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() bool { return len(c.missing(warmID, want)) == 0 }, "the first block: missing %v", c.missing(warmID, want))

	crawling.Store(true)
	block, id := newEnvelope(t, c.nodes[0].key, strings.Repeat("b", 3<<20))
	start := time.Now()
	if err := c.nodes[0].router.Broadcast(ctx, block); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() bool { return len(c.missing(id, want)) == 0 }, "missing %v behind the slow head", c.missing(id, want))
	t.Logf("every other validator had the block after %v", time.Since(start).Round(time.Millisecond))
	s := c.nodes[0].router.Stats()
	if s.SlowHeads != 1 {
		t.Errorf("%d slow heads, want 1", s.SlowHeads)
	}
	c.nodes[0].router.mu.Lock()
	_, laggard := c.nodes[0].router.laggards[c.nodes[slow].host.ID()]
	c.nodes[0].router.mu.Unlock()
	if !laggard {
		t.Error("the slow head is not a laggard")
	}
}
