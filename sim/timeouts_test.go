package sim

import (
	"errors"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/raintree"
	"github.com/rainp2p/rainp2p/p2p/unicast"
)

// The timeout paths that mocknet never exercises (it ignores stream
// deadlines, and a dial to a missing peer fails at once) run here on QUIC
// over simnet, in virtual time, so each wait costs exactly its configured
// duration and nothing sleeps for real.

// twoOfTenDown is the network of the down-validator tests: 10 validators,
// 2 of them down, 3 broadcasts over 10 ms links, with RainTree's
// SkipDisconnectedAfter set to skip. A network of validators alone
// broadcasts as soon as it is up, before the default second of grace.
func twoOfTenDown(skip time.Duration, strategies ...string) NetConfig {
	return NetConfig{
		Validators:     10,
		DownValidators: 2,
		Broadcasts:     3,
		Strategies:     mustParseStrategies(strategies),
		Seed:           3,
		PayloadSize:    256,
		Latency:        10 * time.Millisecond,
		Virtual:        &VirtualLinks{},
		tweak:          func(c *p2p.Config) { c.RainTree.SkipDisconnectedAfter = skip },
	}
}

// TestVirtualACKRedelegationReachesValidatorsBehindDownOnes runs RainTree
// alone with 2 of 10 validators down, one level per hop so that they have
// subtrees: without ACKs their subtrees are cut off; with ACKs every live
// validator is reached, and the validators behind a down one only after
// the sender gave up on it, which takes real (virtual) time.
func TestVirtualACKRedelegationReachesValidatorsBehindDownOnes(t *testing.T) {
	skipVirtualNetwork(t)
	// Dial the down validators rather than skip them (raintree.Config.
	// SkipDisconnectedAfter), so the dial's timeout path runs.
	cfg := twoOfTenDown(0, "cover+ternary", "cover+ack+ternary")
	res := runVirtual(t, cfg)
	cover, ack := byName(t, res, "cover+ternary"), byName(t, res, "cover+ack+ternary")
	t.Logf("validator coverage ms: cover %+v, cover+ack %+v", cover.ValidatorCoverageMS, ack.ValidatorCoverageMS)
	if r := ratioOf(t, cover); r >= 1 {
		t.Fatalf("premise: cover alone delivered %v with 2 down validators; pick a seed whose down validators have subtrees", r)
	}
	if r := ratioOf(t, ack); r != 1 {
		t.Errorf("cover+ack delivered %v, want 1: re-delegation should reach every live validator", r)
	}
	// A healthy tree of 10 validators is two hops of 10ms links deep; the
	// stragglers wait for a dial to a down validator to fail first.
	// QUIC gives up a handshake nobody answers after 5s; the send fails
	// then, before its own SendTimeout, and the span goes to the next
	// validator.
	limit := ms(raintree.DefaultSendTimeout)
	if q := ack.ValidatorCoverageMS; q == nil || q.Max < 1000 || q.Max > limit {
		t.Errorf("cover+ack validator coverage %+v: want the slowest broadcast to wait for a failed dial (1s..%vms)", q, limit)
	}
	if q := cover.ValidatorCoverageMS; q == nil || q.Max > 500 {
		t.Errorf("cover validator coverage %+v: want what it reaches within a few hops (< 500ms)", q)
	}
}

// virtualPair runs f in a synctest bubble with two QUIC hosts on a simnet
// of 10ms links at 20 Mbit/s, a connected and b.
func virtualPair(t *testing.T, f func(t *testing.T, a, b host.Host)) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds simulated QUIC networks")
	}
	synctest.Test(t, func(t *testing.T) {
		cfg := NetConfig{Validators: 2, Latency: 10 * time.Millisecond, Virtual: &VirtualLinks{}}
		fab := newSimnetFabric(cfg, newPairLatency(cfg, 2))
		rng := rand.New(rand.NewPCG(1, 2))
		hosts := make([]host.Host, 2)
		for i := range hosts {
			k, err := seededKey(rng)
			if err != nil {
				t.Fatal(err)
			}
			addr, err := simnetAddr(i)
			if err != nil {
				t.Fatal(err)
			}
			if hosts[i], err = fab.host(i, simNode{key: k, addr: addr}); err != nil {
				t.Fatal(err)
			}
		}
		if err := fab.start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := fab.close(); err != nil {
				t.Error(err)
			}
		}()
		if err := fab.connect(t.Context(), [][2]int{{0, 1}}); err != nil {
			t.Fatal(err)
		}
		f(t, hosts[0], hosts[1])
	})
}

func newUnicast(t *testing.T, h host.Host, cfg unicast.Config, handler unicast.Handler) *unicast.Router {
	t.Helper()
	r, err := unicast.New(h, cfg, handler)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVirtualUnicastWriteTimeoutFiresAfterExactlyWriteTimeout stalls a
// receiver: its handler never returns, so QUIC flow control stops the
// sender, and the Send that cannot finish fails after WriteTimeout.
func TestVirtualUnicastWriteTimeoutFiresAfterExactlyWriteTimeout(t *testing.T) {
	skipVirtualUnderRace(t)
	virtualPair(t, func(t *testing.T, a, b host.Host) {
		const writeTimeout = 3 * time.Second
		cfg := unicast.DefaultConfig("/rainp2p/test/unicast")
		cfg.WriteTimeout = writeTimeout
		release := make(chan struct{})
		var received atomic.Int64
		recv := newUnicast(t, b, cfg, func(peer.ID, []byte) {
			received.Add(1)
			<-release
		})
		send := newUnicast(t, a, cfg, func(peer.ID, []byte) {})
		defer func() {
			close(release)
			_ = send.Close()
			_ = recv.Close()
		}()

		frame := make([]byte, 1<<20)
		var err error
		var took time.Duration
		sends := 0
		for ; sends < 64 && err == nil; sends++ {
			start := time.Now()
			err = send.Send(t.Context(), b.ID(), frame)
			took = time.Since(start)
			if err == nil && took >= writeTimeout {
				t.Fatalf("send %d succeeded after %v, beyond the write timeout %v", sends+1, took, writeTimeout)
			}
		}
		if err == nil {
			t.Fatalf("64 MiB went to a receiver that reads nothing after its first frame, and no Send timed out")
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("send %d failed with %v, want a deadline error", sends, err)
		}
		// Virtual time: the deadline costs exactly what it says.
		if took != writeTimeout {
			t.Errorf("the failing send took %v, want exactly the write timeout %v", took, writeTimeout)
		}
		if got := received.Load(); got != 1 {
			t.Errorf("receiver handled %d frames, want 1 (its handler blocks)", got)
		}
		if sends < 2 {
			t.Errorf("the first send failed; want flow control to admit a few MiB first")
		}
		t.Logf("send %d of 1 MiB timed out after %v", sends, took)
	})
}

// TestVirtualUnicastIdleInboundStreamIsResetAfterIdleTimeout checks both
// sides of IdleTimeout: a frame just inside it reuses the stream, and after
// it has passed the receiver has reset the stream, so the sender reopens.
func TestVirtualUnicastIdleInboundStreamIsResetAfterIdleTimeout(t *testing.T) {
	skipVirtualUnderRace(t)
	virtualPair(t, func(t *testing.T, a, b host.Host) {
		const idle = 30 * time.Second
		cfg := unicast.DefaultConfig("/rainp2p/test/unicast")
		cfg.IdleTimeout = idle
		got := make(chan struct{}, 8)
		recv := newUnicast(t, b, cfg, func(peer.ID, []byte) { got <- struct{}{} })
		send := newUnicast(t, a, cfg, func(peer.ID, []byte) {})
		defer func() {
			_ = send.Close()
			_ = recv.Close()
		}()
		sendOne := func(label string) {
			t.Helper()
			if err := send.Send(t.Context(), b.ID(), []byte(label)); err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			<-got
		}

		sendOne("first")
		time.Sleep(idle - time.Second)
		sendOne("just inside the idle timeout")
		if s := send.Stats(); s.StreamsOpened != 1 || s.Reconnects != 0 {
			t.Fatalf("within the idle timeout: %d streams opened, %d reconnects; want 1, 0", s.StreamsOpened, s.Reconnects)
		}
		time.Sleep(idle + time.Second)
		sendOne("after the idle timeout")
		// The stream the receiver reset while idle was forgotten with its
		// peer's send state, so this Send opened a fresh one: no reconnect.
		if s := send.Stats(); s.StreamsOpened != 2 || s.Reconnects != 0 {
			t.Errorf("after the idle timeout: %d streams opened, %d reconnects; want 2, 0", s.StreamsOpened, s.Reconnects)
		}
		if s := recv.Stats(); s.StreamsAccepted != 2 || s.FramesReceived != 3 {
			t.Errorf("receiver: %d streams accepted, %d frames; want 2, 3", s.StreamsAccepted, s.FramesReceived)
		}
	})
}

// TestVirtualDownNeighboursAreSkippedWithoutWaitingForADial runs 10
// validators, 2 of them down, with both routers (the background router
// keeps RainTree neighbours connected) and one level per hop, so the down
// ones have subtrees. With the skip (raintree.Config.SkipDisconnectedAfter)
// a down neighbour's span goes to the next validator at once; without it
// the span waits for the dial to fail, and validators lazy among each
// other get it from gossip only at a heartbeat's IHAVE.
func TestVirtualDownNeighboursAreSkippedWithoutWaitingForADial(t *testing.T) {
	skipVirtualNetwork(t)
	const name = "cover+ack+gossipsub+lazy+ternary"
	run := func(skip time.Duration) *Quantiles {
		s := byName(t, runVirtual(t, twoOfTenDown(skip, name)), name)
		if r := ratioOf(t, s); r != 1 {
			t.Errorf("skip after %v: delivered %v, want 1", skip, r)
		}
		return s.ValidatorCoverageMS
	}
	skipped, dialled := run(time.Millisecond), run(0)
	t.Logf("validator coverage ms: skipping %+v, dialling %+v", skipped, dialled)
	if skipped == nil || dialled == nil || skipped.Max > 200 {
		t.Fatalf("skipping: validator coverage %+v, want every broadcast within a few 10ms hops (< 200ms)", skipped)
	}
	if dialled.Max < 2*skipped.Max {
		t.Errorf("dialling a down neighbour took %vms, skipping it %vms: want the skip to matter", dialled.Max, skipped.Max)
	}
}

// TestVirtualRainTreeAloneReachesEveryValidator: without the background
// router nothing keeps a validator connected to its RainTree neighbours,
// so a target with no connection is the normal case and must be dialled,
// not skipped (raintree.Config.SkipDisconnectedAfter is off there).
func TestVirtualRainTreeAloneReachesEveryValidator(t *testing.T) {
	skipVirtualNetwork(t)
	cfg := NetConfig{
		Validators:  60,
		Broadcasts:  3,
		Strategies:  mustParseStrategies([]string{"cover+ack"}),
		Seed:        1,
		PayloadSize: 1024,
		Degree:      DefaultDegree,
		Gap:         2 * time.Second, // past the skip's second of grace
		Latency:     10 * time.Millisecond,
		Virtual:     &VirtualLinks{},
	}
	s := byName(t, runVirtual(t, cfg), "cover+ack")
	if r := ratioOf(t, s); r != 1 {
		t.Errorf("cover+ack delivered %v, want 1", r)
	}
}
