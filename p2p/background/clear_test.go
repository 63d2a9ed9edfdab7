package background

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// A full node clears one validator at a time, and answers any other ask
// with how long it is busy.
func TestAFullNodeClearsOneValidatorAtATime(t *testing.T) {
	const ttl, hold = 500 * time.Millisecond, time.Second
	const v1, v2, fn, fn2, stranger = peer.ID("v1"), peer.ID("v2"), peer.ID("fn"), peer.ID("fn2"), peer.ID("stranger") // stranger: not in the mesh
	type ask struct {
		at    time.Duration
		from  peer.ID
		clear bool
		busy  time.Duration // when not clear
	}
	for _, tt := range []struct {
		name      string
		began     map[peer.ID]time.Duration // when a large frame from the peer began
		ended     map[peer.ID]time.Duration // when it was read whole
		receiving time.Duration             // a counted frame arrives until then
		asks      []ask
	}{
		{name: "the first validator to ask is cleared, the next told to wait out its clearance", asks: []ask{
			{0, v1, true, 0}, {100 * time.Millisecond, v2, false, 400 * time.Millisecond},
		}},
		{name: "a cleared validator asking again is cleared, for no longer", asks: []ask{
			{0, v1, true, 0}, {300 * time.Millisecond, v1, true, 0}, {400 * time.Millisecond, v2, false, 100 * time.Millisecond},
		}},
		{name: "a clearance runs out and the next validator is cleared", asks: []ask{
			{0, v1, true, 0}, {ttl, v2, true, 0}, {ttl + time.Millisecond, v1, false, ttl - time.Millisecond},
		}},
		{name: "a begun frame keeps the others out for the hold", began: map[peer.ID]time.Duration{v1: 100 * time.Millisecond}, asks: []ask{
			{0, v1, true, 0}, {ttl + 50*time.Millisecond, v2, false, hold - ttl + 50*time.Millisecond}, {hold + 100*time.Millisecond, v2, true, 0},
		}},
		{name: "a validator cleared that sent nothing is let through but not cleared again", asks: []ask{
			{0, v1, true, 0}, {ttl, v1, true, 0}, {ttl + time.Millisecond, v2, true, 0},
			{2 * ttl, v2, true, 0}, {2*ttl + time.Millisecond, v1, true, 0},
		}},
		{name: "a validator whose frame began is let through, not cleared, for two holds after", began: map[peer.ID]time.Duration{v1: 0}, asks: []ask{
			{0, v1, true, 0}, {hold, v1, true, 0}, {hold + time.Millisecond, v2, true, 0}, {hold + 2*time.Millisecond, v1, false, ttl - time.Millisecond},
		}},
		{name: "a peer outside the mesh is let through but holds no clearance", asks: []ask{
			{0, stranger, true, 0}, {time.Millisecond, fn, true, 0}, {2 * time.Millisecond, stranger, false, ttl - time.Millisecond},
		}},
		{name: "the bar lasts three holds", asks: []ask{
			{0, v1, true, 0}, {ttl + busyWriteHolds*hold, v1, true, 0}, {ttl + busyWriteHolds*hold + time.Millisecond, v2, false, ttl - time.Millisecond},
		}},
		{name: "while a counted frame arrives every ask is told the hold", receiving: 300 * time.Millisecond, asks: []ask{
			{0, v1, false, hold}, {200 * time.Millisecond, fn, false, hold}, {300 * time.Millisecond, v1, true, 0},
		}},
		{name: "a peer outside the set holds no validator back, and waits for one", asks: []ask{
			{0, fn, true, 0}, {time.Millisecond, v1, true, 0}, {2 * time.Millisecond, fn, false, ttl - time.Millisecond},
		}},
		{name: "peers outside the set are cleared one at a time", asks: []ask{
			{0, fn, true, 0}, {time.Millisecond, fn2, false, ttl - time.Millisecond}, {ttl, fn2, true, 0},
		}},
		{name: "a frame read whole ends its clearance, and the next validator is cleared",
			began: map[peer.ID]time.Duration{v1: 100 * time.Millisecond}, ended: map[peer.ID]time.Duration{v1: 520 * time.Millisecond}, asks: []ask{
				{0, v1, true, 0}, {510 * time.Millisecond, v2, false, hold - 410*time.Millisecond}, {530 * time.Millisecond, v2, true, 0},
				{540 * time.Millisecond, v1, false, ttl - 10*time.Millisecond}, {550 * time.Millisecond, fn, false, ttl - 20*time.Millisecond},
			}},
		{name: "a frame that ends before any clearance changes nothing", ended: map[peer.ID]time.Duration{v1: 0}, asks: []ask{
			{0, v1, true, 0}, {time.Millisecond, v2, false, ttl - time.Millisecond},
		}},
		{name: "a frame that ends before the cleared one begins keeps the clearance", ended: map[peer.ID]time.Duration{v1: 10 * time.Millisecond}, asks: []ask{
			{0, v1, true, 0}, {20 * time.Millisecond, v2, false, ttl - 20*time.Millisecond},
		}},
		{name: "a peer outside the set whose frame began keeps the others outside it out", began: map[peer.ID]time.Duration{fn: 10 * time.Millisecond}, asks: []ask{
			{0, fn, true, 0}, {ttl, fn2, false, hold - ttl + 10*time.Millisecond}, {ttl, v1, true, 0},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(1000, 0)
			c := newClearance(ttl, hold, func(p peer.ID) bool { return p == v1 || p == v2 }, func(p peer.ID) bool { return p != stranger },
				func(now time.Time) bool { return now.Before(start.Add(tt.receiving)) })
			refused := 0
			for i, a := range tt.asks {
				for p, at := range tt.began {
					if at <= a.at {
						c.began(p, start.Add(at))
						delete(tt.began, p)
					}
				}
				for p, at := range tt.ended {
					if at <= a.at {
						c.ended(p, start.Add(at))
						delete(tt.ended, p)
					}
				}
				clear, busy := c.answer(a.from, start.Add(a.at))
				if clear != a.clear || !clear && busy != a.busy {
					t.Fatalf("ask %d (%s at %v) = clear %v, busy %v; want %v, %v", i, a.from, a.at, clear, busy, a.clear, a.busy)
				}
				if !clear {
					refused++
				}
			}
			if c.refusals.Load() != uint64(refused) || c.clears.Load() != uint64(len(tt.asks)-refused) {
				t.Fatalf("counted %d clears and %d refusals, want %d and %d", c.clears.Load(), c.refusals.Load(), len(tt.asks)-refused, refused)
			}
		})
	}
}

// Attack: a validator whose clearances can never be sent (it stalls every
// stream the node opens to it) loses each one when its send fails, and is
// then let through without one, like a peer cleared that sent nothing: it
// cannot take the clearance again with its next ask and keep the other
// validators waiting nearly all the time.
func TestAClearanceThatCouldNotBeSentIsNotTakenAgainAtOnce(t *testing.T) {
	const ttl, hold = 500 * time.Millisecond, time.Second
	const v1, v2 = peer.ID("v1"), peer.ID("v2")
	start := time.Unix(1000, 0)
	c := newClearance(ttl, hold, func(peer.ID) bool { return true }, func(peer.ID) bool { return true }, func(time.Time) bool { return false })
	at := func(d time.Duration) time.Time { return start.Add(d) }
	if clear, _ := c.answer(v1, at(0)); !clear {
		t.Fatal("the first validator to ask was not cleared")
	}
	c.release(v1, at(ttl)) // the answer's send ran out of time
	if clear, _ := c.answer(v1, at(ttl)); !clear {
		t.Fatal("a validator whose answer was lost is not let through")
	}
	if clear, busy := c.answer(v2, at(ttl+time.Millisecond)); !clear {
		t.Fatalf("v1 took the clearance again with its next ask: v2 told busy for %v", busy)
	}
}

// A writer's ask waits for its answer at most ClearWait: a clearance or
// no answer lets the write go (and a peer that did not answer is not
// asked again for askMute), a busy notice holds it; a peer that does not
// list the protocol is not asked (virtual time).
func TestAnAskWaitsForItsAnswerAtMostClearWait(t *testing.T) {
	const wait = 500 * time.Millisecond
	const p = peer.ID("p")
	for _, tt := range []struct {
		name     string
		lists    bool
		answer   func(a *clearAsks) // called when the ask arrives; nil: none
		sendErr  error
		queued   time.Duration // how long the ask waits behind our own frames to p
		budget   time.Duration // what is left of the write's; 0: a whole wait
		want     bool
		waited   time.Duration
		askAgain bool // a second write asks p again
	}{
		{name: "a clearance lets the write go", lists: true, answer: func(a *clearAsks) { a.answered(p, true) }, want: true, askAgain: true},
		{name: "a busy answer holds the write", lists: true, answer: func(a *clearAsks) { a.answered(p, false) }, want: false, askAgain: true},
		{name: "no answer lets the write go after the wait, and mutes the peer", lists: true, want: true, waited: wait},
		{name: "a slow answer counts, and mutes the peer", lists: true, answer: func(a *clearAsks) {
			time.Sleep(wait/2 + time.Millisecond)
			a.answered(p, false)
		}, want: false, waited: wait/2 + time.Millisecond},
		{name: "an ask that cannot be sent lets the write go, and mutes the peer", lists: true, sendErr: errors.New("no stream"), want: true},
		{name: "a peer that does not list the protocol is not asked", lists: false, want: true, askAgain: false},
		{name: "what is left of the write's budget bounds the wait, and a peer given less than half of it is not muted", lists: true,
			budget: wait / 5, want: true, waited: wait / 5, askAgain: true},
		{name: "an ask that queued behind our own frames is timed from when it was written", lists: true, queued: wait * 3 / 5,
			answer: func(a *clearAsks) { a.answered(p, true) }, want: true, waited: wait * 3 / 5, askAgain: true},
		{name: "an ask that could not leave within the wait lets the write go, and does not mute the peer", lists: true, queued: 2 * wait,
			want: true, waited: wait, askAgain: true},
		{name: "no answer to an ask written late is not held against the peer", lists: true, queued: wait * 3 / 5,
			want: true, waited: wait, askAgain: true},
		{name: "no answer for half the wait after the ask was written mutes the peer", lists: true, queued: wait * 2 / 5,
			want: true, waited: wait},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var tried atomic.Int32 // asks handed to send
				var a *clearAsks
				a = newClearAsks(wait, func(peer.ID) bool { return tt.lists }, func(ctx context.Context, to peer.ID, frame []byte) error {
					if u, err := wire.OpenUnicast("", frame, 0); err != nil || !u.AskToSend || to != p {
						t.Errorf("sent %x to %s, want an ask to p", frame, to)
					}
					tried.Add(1)
					select {
					case <-time.After(tt.queued):
					case <-ctx.Done():
						return ctx.Err()
					}
					if tt.answer != nil {
						go tt.answer(a)
					}
					return tt.sendErr
				})
				start := time.Now()
				budget := wait
				if tt.budget > 0 {
					budget = tt.budget
				}
				if got := a.ask(p, budget, nil); got != tt.want {
					t.Fatalf("ask = %v, want %v", got, tt.want)
				}
				if got := time.Since(start); got != tt.waited {
					t.Fatalf("waited %v, want %v", got, tt.waited)
				}
				before := tried.Load()
				a.ask(p, wait, nil)
				if asked := tried.Load() > before; asked != tt.askAgain {
					t.Fatalf("a second write asked again: %v, want %v", asked, tt.askAgain)
				}
			})
		})
	}
	if newClearAsks(0, nil, nil) != nil {
		t.Fatal("ClearWait 0 asks")
	}
}

// A peer an ask cannot be written to in time is held to it only the
// second time within askMute: once may be this node's own frames ahead
// of the ask, twice is a peer that does not read (virtual time).
func TestAPeerWhoseAsksCannotBeWrittenTwiceIsMuted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 500 * time.Millisecond
		const p = peer.ID("p")
		var tried atomic.Int32
		a := newClearAsks(wait, func(peer.ID) bool { return true }, func(ctx context.Context, _ peer.ID, _ []byte) error {
			tried.Add(1)
			<-ctx.Done() // the stream never takes the ask
			return ctx.Err()
		})
		for i, want := range []int32{1, 2, 2} {
			if !a.ask(p, wait, nil) {
				t.Fatalf("ask %d held the write", i)
			}
			if got := tried.Load(); got != want {
				t.Fatalf("after ask %d, %d asks tried; want %d", i, got, want)
			}
		}
		if a.muted.Load() != 1 || a.unanswered.Load() != 2 {
			t.Fatalf("muted %d, unanswered %d; want 1, 2", a.muted.Load(), a.unanswered.Load())
		}
	})
}

// neverRead makes h take streams on proto and never read them; they are
// reset when the test ends.
func neverRead(t *testing.T, h host.Host, proto protocol.ID) {
	t.Helper()
	held := make(chan network.Stream, 16)
	h.SetStreamHandler(proto, func(s network.Stream) { held <- s })
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
}

// bigFrame is a gossip RPC carrying one message of at least LargeBytes.
func bigFrame(t *testing.T, id byte) []byte {
	t.Helper()
	data := append([]byte{id}, bytes.Repeat([]byte{'x'}, DefaultLargeBytes)...)
	return rpcFrame(t, &pb.RPC{Publish: []*pb.Message{{Data: data}}})
}

// awaitListed waits until a has heard (identify) that b lists proto.
func awaitListed(t *testing.T, a host.Host, b peer.ID, proto protocol.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "identify lists "+string(proto), func() bool {
		ok, err := a.Peerstore().SupportsProtocols(b, proto)
		return err == nil && len(ok) > 0
	})
}

// On real routers: a full node clears the first validator that asks;
// while that validator's block arrives, it tells the second it is busy,
// and once the block has arrived whole its clearance ends: the second is
// cleared at once.
func TestAFullNodeClearsTheNextValidatorOnlyOnceTheFirstBlockHasArrived(t *testing.T) {
	const net = "clear"
	cfg := testConfig(net)
	// Long enough for a loaded machine (CI runs packages side by side
	// under -race): an answer that is slow still counts.
	cfg.Gossip.BusyHold = 4 * time.Second
	cfg.Gossip.LargeWriteHold = 4 * time.Second
	cfg.Gossip.ClearWait = 2 * time.Second
	vcfg := cfg
	vcfg.RainTreeValidator = true
	f := startNode(t, cfg)
	v1, v2 := startNodeOn(t, newHostWithConnManager(t), vcfg), startNodeOn(t, newHostWithConnManager(t), vcfg)
	f.r.SetValidatorIDs(nil, []peer.ID{v1.h.ID(), v2.h.ID()})
	followed := f.r.FollowReads(f.h) // as RainTree's and gossip's streams are
	var streams []network.Stream
	for i, v := range []*node{v1, v2} {
		connect(t, v.h, f.h)
		awaitListed(t, v.h, f.h.ID(), ClearProtocolID(net))
		streams = append(streams, streamTo(t, v.h, followed, protocol.ID(fmt.Sprintf("/test/clear/%d", i)), closedChan()))
	}
	frame := bigFrame(t, 'a')
	if !v1.r.up.Load().askers.ask(f.h.ID(), cfg.Gossip.ClearWait, nil) || v1.r.Stats().AsksCleared != 1 {
		t.Fatalf("v1 was not cleared: %+v", v1.r.Stats())
	}
	// v1's block begins, and stalls half way.
	half := len(frame) / 2
	if _, err := streams[0].Write(frame[:half]); err != nil {
		t.Fatal(err)
	}
	c := f.r.up.Load().clearance
	holds := func(p peer.ID) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.val.to == p && c.val.used && time.Now().Before(c.val.until)
	}
	eventually(t, 10*time.Second, "v1's block began", func() bool { return holds(v1.h.ID()) })
	// v2 asks as its write would (asking directly: a busy notice f sends
	// its mesh would otherwise hold v2's write past the clearance).
	askers := v2.r.up.Load().askers
	if askers.ask(f.h.ID(), cfg.Gossip.ClearWait, nil) {
		t.Fatalf("v2 was cleared while v1's block arrived: %+v", v2.r.Stats())
	}
	// The rest of v1's block: its clearance ends as the frame does, not a
	// BusyHold after it began. Half a BusyHold: the block began a moment
	// ago, its hold has most of its 4s to run.
	if _, err := streams[0].Write(frame[half:]); err != nil {
		t.Fatal(err)
	}
	eventually(t, cfg.Gossip.BusyHold/2, "v1's clearance ends with its block", func() bool { return !holds(v1.h.ID()) })
	if !askers.ask(f.h.ID(), cfg.Gossip.ClearWait, nil) {
		t.Fatalf("v2 was not cleared once v1's block had arrived: %+v", v2.r.Stats())
	}
	s, fs := v2.r.Stats(), f.r.Stats()
	if s.AsksSent != 2 || s.AsksCleared != 1 || s.AsksRefused != 1 {
		t.Fatalf("v2 sent %d asks, %d cleared, %d refused; want 2, 1, 1", s.AsksSent, s.AsksCleared, s.AsksRefused)
	}
	if fs.ClearancesGiven != 2 || fs.ClearancesRefused != 1 || fs.AnswersDropped != 0 {
		t.Fatalf("f gave %d clearances, refused %d, dropped %d answers; want 2, 1, 0", fs.ClearancesGiven, fs.ClearancesRefused, fs.AnswersDropped)
	}
}

// Attack on real hosts: a peer that lists ClearProtocolID and never
// answers costs a writer one ClearWait of its turn, and is then written
// to without being asked.
func TestAPeerThatNeverAnswersIsAskedOnceAndWrittenTo(t *testing.T) {
	const net = "clear-mute"
	cfg := testConfig(net)
	cfg.Gossip.ClearWait = 300 * time.Millisecond
	cfg.RainTreeValidator = true
	v := startNodeOn(t, newHostWithConnManager(t), cfg)
	mute := newHost(t)
	var asks atomic.Int32
	mute.SetStreamHandler(ClearProtocolID(net), func(s network.Stream) { _ = s.Reset() })
	mute.SetStreamHandler(UnicastProtocolID(net), func(s network.Stream) {
		asks.Add(1)
		_, _ = io.Copy(io.Discard, s)
		_ = s.Reset()
	})
	connect(t, v.h, mute)
	awaitListed(t, v.h, mute.ID(), ClearProtocolID(net))
	s := streamTo(t, v.h, mute, "/test/mute", closedChan())
	frame := bigFrame(t, 'a')
	for range 2 {
		if n, err := v.r.up.Load().write(s, frame); err != nil || n != len(frame) {
			t.Fatalf("write: %d of %d bytes, %v", n, len(frame), err)
		}
	}
	if st := v.r.Stats(); st.AsksSent != 1 || st.AsksUnanswered != 1 || st.AsksMuted != 1 || st.AsksCleared != 0 {
		t.Fatalf("%d asks sent, %d unanswered, %d peers muted, %d cleared; want 1, 1, 1, 0", st.AsksSent, st.AsksUnanswered, st.AsksMuted, st.AsksCleared)
	}
	if asks.Load() != 1 {
		t.Fatalf("the mute peer got %d unicast streams, want the one ask", asks.Load())
	}
}

// Attack on real hosts: a peer that lists ClearProtocolID and stops
// reading its background unicast stream, once that stream is full, lets
// no ask through: two asks that cannot be written within a minute mute
// it, and the write after them goes unasked.
func TestAPeerThatStopsReadingIsMutedAfterTwoUnwrittenAsks(t *testing.T) {
	const net = "clear-deaf"
	cfg := testConfig(net)
	cfg.Gossip.ClearWait = 300 * time.Millisecond
	cfg.RainTreeValidator = true
	v := startNodeOn(t, newHostWithConnManager(t), cfg)
	deaf := newHost(t)
	deaf.SetStreamHandler(ClearProtocolID(net), func(s network.Stream) { _ = s.Reset() })
	neverRead(t, deaf, UnicastProtocolID(net))
	connect(t, v.h, deaf)
	awaitListed(t, v.h, deaf.ID(), ClearProtocolID(net))
	// Frames past the stream's window (yamux's 256 KiB) fill it: three
	// frames of 64 KiB are written, the fourth is not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var written atomic.Int32
	go func() {
		for ctx.Err() == nil {
			if v.r.uc.Send(ctx, deaf.ID(), make([]byte, cfg.MaxMessageSize)) == nil {
				written.Add(1)
			}
		}
	}()
	eventually(t, 10*time.Second, "three frames written to the deaf peer", func() bool { return written.Load() >= 3 })
	askers := v.r.up.Load().askers
	for i := range 3 {
		if !askers.ask(deaf.ID(), cfg.Gossip.ClearWait, nil) {
			t.Fatalf("ask %d held the write", i)
		}
	}
	if st := v.r.Stats(); st.AsksSent != 2 || st.AsksUnanswered != 2 || st.AsksMuted != 1 {
		t.Fatalf("%d asks sent, %d unanswered, %d peers muted; want 2, 2, 1", st.AsksSent, st.AsksUnanswered, st.AsksMuted)
	}
}

// On real routers: a validator receiving a block (on RainTree, here a
// followed stream from another validator) tells a full node that asks to
// push it a large frame that it is busy; the push goes once the notice
// has run out.
func TestAValidatorKeepsAFullNodesPushWaitingWhileItsBlockArrives(t *testing.T) {
	const net, pid = "clear-validator", "/test/raintree-block"
	cfg := testConfig(net)
	cfg.Gossip.ClearWait = cfg.Gossip.LargeWriteHold // an answer slowed by a loaded machine still counts
	vcfg := cfg
	vcfg.RainTreeValidator = true
	vcfg.Gossip.AskHold = 10 * time.Second // the block below is on track at a quarter of its rate
	v0, v1 := startNodeOn(t, newHostWithConnManager(t), vcfg), startNodeOn(t, newHostWithConnManager(t), vcfg)
	f := startNode(t, cfg)
	v0.r.SetValidatorIDs(nil, []peer.ID{v0.h.ID(), v1.h.ID()})
	connect(t, v1.h, v0.h)
	connect(t, f.h, v0.h)
	awaitListed(t, f.h, v0.h.ID(), ClearProtocolID(net))
	asks := v0.r.up.Load().asks
	readAll(t, v0.h, pid, asks, nil)
	stop := blockSender(t, v1.h, v0.h, pid, 4<<20, 32<<10, 20*time.Millisecond) // about 1.6 MB/s, for 2.6 s
	awaitReceiving(t, asks, true, 5*time.Second)

	s := streamTo(t, f.h, v0.h, "/test/push", closedChan())
	wrote := make(chan error, 1)
	go func() { _, err := f.r.up.Load().write(s, bigFrame(t, 'p')); wrote <- err }()
	eventually(t, 10*time.Second, "v0 answers f", func() bool { st := f.r.Stats(); return st.AsksRefused+st.AsksCleared+st.AsksUnanswered > 0 })
	if st := f.r.Stats(); st.AsksRefused < 1 {
		t.Fatalf("f's first ask: %d refused, %d cleared, %d unanswered; want it refused (v0 receiving: %v)", st.AsksRefused, st.AsksCleared, st.AsksUnanswered, asks.receiving(time.Now()))
	}
	if v0.r.Stats().ClearancesRefused < 1 || f.r.Stats().LargeWritesHeldBusy != 1 {
		t.Fatalf("v0 refused %d asks, f held %d writes; want at least 1 and 1", v0.r.Stats().ClearancesRefused, f.r.Stats().LargeWritesHeldBusy)
	}
	stop()
	awaitWrite(t, wrote, "v0's block had stopped")
	if st := f.r.Stats(); st.AsksCleared != 1 {
		t.Fatalf("f's asks: %d cleared, want the last one", st.AsksCleared)
	}
}
