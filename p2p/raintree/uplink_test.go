package raintree

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

func TestUplinkOrder(t *testing.T) {
	type frame struct{ index, span, retries int }
	for _, tt := range []struct {
		name     string
		arrivals []frame
		want     []int
	}{
		{"larger spans go first, and equal ones in the order they came",
			[]frame{{10, 1, 0}, {11, 9, 0}, {12, 3, 0}, {13, 9, 0}, {14, 1, 0}, {15, 3, 0}}, []int{11, 13, 12, 15, 10, 14}},
		{"a re-delegated frame goes before the node's own, whatever their spans",
			[]frame{{10, 9, 0}, {11, 2, 1}, {12, 3, 0}, {13, 8, 2}}, []int{13, 11, 10, 12}},
		{"a laggard's frame of itself alone goes after every subtree of its level",
			[]frame{{10, 1, 0}, {11, 8, 0}, {12, 2, 0}}, []int{11, 12, 10}},
		{"a re-delegated frame of one validator alone goes after every subtree",
			[]frame{{10, 1, 1}, {11, 1, 1}, {12, 4, 0}, {13, 2, 1}, {14, 1, 0}}, []int{13, 12, 10, 11, 14}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var q uplinkQueue
			for _, a := range tt.arrivals {
				d := delegation{target: Target{Level: 3, Index: a.index, Span: Span{Start: a.index, Len: a.span}}, retries: a.retries}
				if !q.pushLocked(d, 10) {
					t.Fatalf("push of %v refused", a)
				}
			}
			var got []int
			for d, ok := q.popLocked(); ok; d, ok = q.popLocked() {
				got = append(got, d.target.Index)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("sent %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUplinkQueueIsBounded(t *testing.T) {
	var q uplinkQueue
	for i := range 3 {
		if !q.pushLocked(delegation{target: Target{Level: 1, Index: i}}, 3) {
			t.Fatalf("push %d refused below the limit", i)
		}
	}
	if q.pushLocked(delegation{target: Target{Level: 5}}, 3) {
		t.Fatal("a fourth frame fit in a queue of three")
	}
}

// With every tree frame paced, a broadcast still reaches everyone with
// N-1 tree frames.
func TestPacedBroadcastReachesEveryValidator(t *testing.T) {
	// A proof of forwarding that is late on a loaded machine would add a
	// re-delegation; forwarded_test.go covers the checks.
	c := newMockCluster(t, 13, func(cfg *Config) { cfg.PaceBytes, cfg.CheckForwarding = 1, false })
	origin := 4
	nonce := c.broadcast(origin)
	eventually(t, 10*time.Second, func() bool { return len(c.missing(nonce, others(13, origin))) == 0 },
		"validators %v never delivered", c.missing(nonce, others(13, origin)))
	var paced uint64
	for _, nd := range c.nodes {
		paced += nd.router.Stats().TreeSent
	}
	if paced != 12 {
		t.Errorf("%d tree frames sent, want 12 (N-1)", paced)
	}
}

func TestSmallMessagesInSmallSetsGoTwoLevelsPerHop(t *testing.T) {
	cfg := DefaultConfig("net")
	tests := []struct {
		name       string
		n, size    int
		perHop     int
		neighbours []int
	}{
		{"a small message in a small set", 100, 1024, 2, []int{1, 2}},
		{"a paced message", 100, cfg.PaceBytes, 1, []int{1, 2}},
		{"a set of 3^6 is still small", DefaultWideMaxValidators, 1024, 2, []int{1, 2}},
		{"a set above WideMaxValidators", DefaultWideMaxValidators + 1, 1024, 1, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cfg.LevelsPerHopFor(tt.n, tt.size); got != tt.perHop {
				t.Errorf("LevelsPerHopFor(%d, %d) = %d, want %d", tt.n, tt.size, got, tt.perHop)
			}
			if got := cfg.PerHops(tt.n); !slices.Equal(got, tt.neighbours) {
				t.Errorf("PerHops(%d) = %v, want %v", tt.n, got, tt.neighbours)
			}
		})
	}
}

// Every node hears once that its uplink is done with a broadcast, paced
// or not: a node that forwards it once its frames have been written, a
// leaf at once.
func TestOnTreeSentFiresOnceEachNodeIsDoneWithItsFrames(t *testing.T) {
	const n, origin = 13, 4
	for _, paced := range []bool{true, false} {
		t.Run(fmt.Sprintf("paced %v", paced), func(t *testing.T) {
			var mu sync.Mutex
			sentAtCall := map[int][]uint64{} // node -> its TreeSent at each call
			var c *cluster
			c = newMockClusterEach(t, n, func(i int) func(*Config) {
				return func(cfg *Config) {
					if paced {
						cfg.PaceBytes = 1
					}
					// A proof of forwarding that is late on a loaded machine
					// would add a forwarder; forwarded_test.go covers the checks.
					cfg.CheckForwarding = false
					cfg.LevelsPerHop = 1
					// Hops go on only once their frames are written: a hop
					// HopHold let go early on a loaded machine would still be
					// writing when the last one ends (CI saw 4 of 5 frames).
					cfg.HopHold = 30 * time.Second
					cfg.OnTreeSent = func(*wire.Message) {
						mu.Lock()
						defer mu.Unlock()
						sentAtCall[i] = append(sentAtCall[i], c.nodes[i].router.Stats().TreeSent)
					}
				}
			})
			id := c.broadcast(origin)
			plan := Broadcast(n, origin, ModeCover, Options{})
			calls := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(sentAtCall)
			}
			eventually(t, 10*time.Second, func() bool { return calls() == n }, "OnTreeSent ran on %d nodes, want all %d", calls(), n)
			eventually(t, 10*time.Second, func() bool { return len(c.missing(id, others(n, origin))) == 0 },
				"validators %v never delivered", c.missing(id, others(n, origin)))
			// A frame re-delegated on a loaded machine (a late ACK) adds
			// frames and a call; without one each node is exact.
			exact := c.sum(func(s Stats) uint64 { return s.Retries + s.AckTimeouts }) == 0
			mu.Lock()
			defer mu.Unlock()
			for i, at := range sentAtCall {
				want := uint64(plan.Writes[i])
				if at[0] < want || exact && (len(at) != 1 || at[0] != want) {
					t.Errorf("node %d: OnTreeSent after %v frames, want once after its %d", i, at, want)
				}
			}
		})
	}
}

// Attack: a first-hop target whose frame cannot be written holds the
// origin's next hop back for at most HopHold, not for the whole send:
// with a connected target that stops reading, the next hop waits
// HopHold; a target the origin must dial first (its address a tarpit that
// never answers) does not hold it back at all.
func TestAStalledTargetHoldsTheNextHopBackOnlyForHopHold(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stall func(t *testing.T, c *cluster, origin int)
	}{
		{"a connected target that stops reading", stallFirstTarget},
		{"a target behind a dial that hangs", tarpitFirstTarget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n, origin = 9, 0
			c := newTCPCluster(t, n, func(cfg *Config) {
				cfg.LevelsPerHop, cfg.SkipDisconnectedAfter, cfg.SendTimeout = 1, 0, time.Minute
			})
			tt.stall(t, c, origin)
			env, id := newEnvelope(t, c.nodes[origin].key, "past a stalled target")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = c.nodes[origin].router.Broadcast(ctx, env) }() // waits on the stalled send
			var lower []int                                                // the origin's own part, sent after its first hop
			for _, tg := range OriginTargets(ModeCover, n, origin, 1) {
				if tg.Level == 1 {
					lower = append(lower, tg.Index)
				}
			}
			start := time.Now()
			eventually(t, 20*time.Second, func() bool { return len(c.missing(id, lower)) == 0 }, "validators %v never got it", c.missing(id, lower))
			if waited := time.Since(start); waited > 5*time.Second {
				t.Errorf("the origin's last hop took %v behind a stalled first-hop frame; HopHold is %v", waited, DefaultHopHold)
			}
		})
	}
}

// Attack: a last-hop target that stops reading holds a node's notice that
// its tree frames have left (Config.OnTreeSent, after which its gossip
// goes out) back for HopHold, not for SendTimeout.
func TestAStalledLastHopTargetHoldsOnTreeSentBackOnlyForHopHold(t *testing.T) {
	const n, origin = 9, 0
	var notified atomic.Bool
	c := newTCPClusterEach(t, n, func(i int) func(*Config) {
		return func(cfg *Config) {
			cfg.LevelsPerHop, cfg.SkipDisconnectedAfter, cfg.SendTimeout = 1, 0, time.Minute
			if i == origin {
				cfg.OnTreeSent = func(*wire.Message) { notified.Store(true) }
			}
		}
	})
	var last []int // the origin's last hop
	for _, tg := range OriginTargets(ModeCover, n, origin, 1) {
		if tg.Level == 1 {
			last = append(last, tg.Index)
		}
	}
	stallTarget(t, c, origin, last[0])
	env, _ := newEnvelope(t, c.nodes[origin].key, "past a stalled last hop")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go func() { _ = c.nodes[origin].router.Broadcast(ctx, env) }()
	eventually(t, 20*time.Second, notified.Load, "OnTreeSent never ran on the origin")
	// The stalled frame takes the unicast write timeout (10 s) to fail.
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("OnTreeSent came %v after the broadcast, waiting on the stalled last-hop frame; HopHold is %v", waited, DefaultHopHold)
	}
}

// A Broadcast whose next hop is held when the router closes returns, the
// held frames reporting ErrClosed, rather than waiting on them forever.
func TestABroadcastWithAHopHeldReturnsWhenTheRouterCloses(t *testing.T) {
	const n, origin = 9, 0
	c := newTCPCluster(t, n, func(cfg *Config) {
		cfg.LevelsPerHop, cfg.SkipDisconnectedAfter, cfg.SendTimeout, cfg.HopHold = 1, 0, time.Minute, time.Minute
	})
	stallFirstTarget(t, c, origin)
	env, _ := newEnvelope(t, c.nodes[origin].key, "held")
	done := make(chan error, 1)
	go func() { done <- c.nodes[origin].router.Broadcast(context.Background(), env) }()
	eventually(t, 10*time.Second, func() bool { return c.nodes[origin].router.Stats().TreeSent > 0 }, "the first hop's other frame was never written")
	if err := c.nodes[origin].router.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Broadcast = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Broadcast still waiting after Close")
	}
}

// Broadcasts whose first-hop frames wait in a target's queue behind a
// stalled one return when the router closes, the frames left in the
// queue counted as written so that their held hops report ErrClosed too.
func TestBroadcastsQueuedBehindAStalledFrameReturnWhenTheRouterCloses(t *testing.T) {
	const n, origin = 9, 0
	c := newTCPCluster(t, n, func(cfg *Config) {
		cfg.LevelsPerHop, cfg.SkipDisconnectedAfter, cfg.SendTimeout, cfg.HopHold = 1, 0, time.Minute, time.Minute
	})
	stallFirstTarget(t, c, origin)
	r := c.nodes[origin].router
	stalled := c.set.At(OriginTargets(ModeCover, n, origin, 1)[0].Index).PeerID
	const broadcasts = 3
	done := make(chan error, broadcasts)
	for i := range broadcasts {
		env, _ := newEnvelope(t, c.nodes[origin].key, fmt.Sprintf("queued %d", i))
		go func() { done <- r.Broadcast(context.Background(), env) }()
	}
	queued := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if q := r.out[stalled]; q != nil {
			return len(q.items)
		}
		return 0
	}
	// One frame is being written (behind the stream's full window), the
	// others wait in the queue.
	eventually(t, 10*time.Second, func() bool { return queued() == broadcasts-1 }, "%d frames queued for the stalled target", queued())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for range broadcasts {
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Broadcast = %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a Broadcast still waiting after Close")
		}
	}
}

// stallFirstTarget makes origin's first first-hop target a connected peer
// that stops reading RainTree frames, and fills the stream to it with a
// frame larger than the stream's window, so that origin's next frame to it
// waits.
func stallFirstTarget(t *testing.T, c *cluster, origin int) {
	t.Helper()
	stallTarget(t, c, origin, OriginTargets(ModeCover, len(c.nodes), origin, 1)[0].Index)
}

// stallTarget makes node target a connected peer that stops reading
// RainTree frames, with origin's stream to it full.
func stallTarget(t *testing.T, c *cluster, origin, target int) {
	t.Helper()
	first := c.nodes[target]
	_ = first.router.Close()
	first.router = nil
	streams := make(chan network.Stream, 4)
	first.host.SetStreamHandler(ProtocolID(testNetwork), func(s network.Stream) { streams <- s }) // never read
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for {
			select {
			case s := <-streams:
				_ = s.Reset()
			default:
				return
			}
		}
	})
	r := c.nodes[origin].router
	go func() { _ = r.uni.Send(ctx, first.host.ID(), make([]byte, 2<<20)) }()
	var s network.Stream
	eventually(t, 10*time.Second, func() bool {
		select {
		case s = <-streams:
			return true
		default:
			return false
		}
	}, "the stalled target never got a stream")
	t.Cleanup(func() { _ = s.Reset() })
}

// tarpitFirstTarget points origin at a TCP listener that accepts and never
// answers for its first first-hop target, so that frame's dial hangs.
func tarpitFirstTarget(t *testing.T, c *cluster, origin int) {
	t.Helper()
	tarpit, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := tarpit.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn) // never read, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		tarpit.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range held {
			conn.Close()
		}
	})
	n := len(c.nodes)
	first := OriginTargets(ModeCover, n, origin, 1)[0].Index
	ps := c.nodes[origin].host.Peerstore()
	stalled := c.nodes[first].host.ID()
	ps.ClearAddrs(stalled)
	ps.AddAddr(stalled, ma.StringCast("/ip4/127.0.0.1/tcp/"+strconv.Itoa(tarpit.Addr().(*net.TCPAddr).Port)), time.Hour)
}
