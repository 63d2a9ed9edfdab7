package background

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

func newTestAsks(hold time.Duration) *asks {
	g := DefaultGossipParams()
	g.LargeBytes, g.AskHold = testLarge, hold
	return newAsks(g, nil)
}

// arriving registers a counted frame of size bytes begun ago before now,
// with read bytes of it read.
func arriving(a *asks, now time.Time, ago time.Duration, size, read uint64) {
	r := &readStream{a: a, since: now.Add(-ago), size: size, read: read}
	r.counting.Store(true)
	a.reads[r] = struct{}{}
}

func TestIWantsAreLeftOutOnlyWhileALargeFrameArrivesAtARate(t *testing.T) {
	iwant := &pb.ControlMessage{Iwant: []*pb.ControlIWant{{MessageIDs: []string{"a", "b"}}}}
	graft := []*pb.ControlGraft{{TopicID: proto.String("t")}}
	asking := &pb.RPC{Control: &pb.ControlMessage{Iwant: iwant.Iwant, Graft: graft}, Publish: []*pb.Message{message('p')}}
	rest := &pb.RPC{Control: &pb.ControlMessage{Graft: graft}, Publish: []*pb.Message{message('p')}}
	tests := []struct {
		name    string
		frame   func(*asks, time.Time) // what is arriving
		rpc     *pb.RPC
		want    *pb.RPC // nil: nothing written
		changed bool
		heldIDs uint64
	}{
		{"with nothing arriving an IWANT leaves", func(*asks, time.Time) {}, asking, asking, false, 0},
		{"while a block arrives the IWANT is left out and the rest leaves", func(a *asks, now time.Time) { arriving(a, now, time.Second, 1<<20, 512<<10) }, asking, rest, true, 2},
		{"an RPC that only asked is not written", func(a *asks, now time.Time) { arriving(a, now, time.Second, 1<<20, 512<<10) }, &pb.RPC{Control: iwant}, nil, true, 2},
		{"an RPC that asks nothing is not rewritten", func(a *asks, now time.Time) { arriving(a, now, time.Second, 1<<20, 512<<10) }, rest, rest, false, 0},
		{"a frame that has brought nothing yet holds within its first 250ms", func(a *asks, now time.Time) { arriving(a, now, 100*time.Millisecond, 1<<20, 0) }, asking, rest, true, 2},
		{"a frame arriving slower than AskMinRate holds nothing", func(a *asks, now time.Time) { arriving(a, now, time.Second, 1<<20, 10<<10) }, asking, asking, false, 0},
		{"a frame not on track to be whole within AskHold holds nothing", func(a *asks, now time.Time) { arriving(a, now, time.Second, 64<<20, 512<<10) }, asking, asking, false, 0},
		{"a frame that began AskHold ago holds nothing", func(a *asks, now time.Time) { arriving(a, now, 3*time.Second, 1<<20, 1<<20) }, asking, asking, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, now := newTestAsks(3*time.Second), time.Now()
			tt.frame(a, now)
			out, changed := a.filter(rpcFrame(t, tt.rpc), now)
			if changed != tt.changed || a.held.Load() != tt.heldIDs {
				t.Fatalf("changed %v, %d IDs held; want %v, %d", changed, a.held.Load(), tt.changed, tt.heldIDs)
			}
			switch {
			case tt.want == nil && out != nil:
				t.Fatalf("wrote %d bytes, want nothing", len(out))
			case tt.want != nil && !proto.Equal(decodeFrame(t, out), tt.want):
				t.Fatalf("wrote %v, want %v", decodeFrame(t, out), tt.want)
			}
		})
	}
}

func decodeFrame(t *testing.T, frame []byte) *pb.RPC {
	t.Helper()
	size, n := binary.Uvarint(frame)
	if n <= 0 || uint64(len(frame)-n) != size {
		t.Fatalf("a frame of %d bytes is not one varint-delimited RPC", len(frame))
	}
	var rpc pb.RPC
	if err := proto.Unmarshal(frame[n:], &rpc); err != nil {
		t.Fatal(err)
	}
	return &rpc
}

// The frames of a stream are followed whatever the reads cut them into:
// a length split over two reads, a small frame and a large one in one
// read, a large frame ending in the middle of a read. Each large frame is
// heard of once when it begins and once when it ends (clear.go), read
// whole or cut off by its stream's end.
func TestFramesAreFollowedAcrossReads(t *testing.T) {
	a := newTestAsks(time.Second)
	var events []string
	a.started = func(peer.ID, time.Time) { events = append(events, "started") }
	a.ended = func(peer.ID, time.Time) { events = append(events, "ended") }
	heard := func(want ...string) {
		t.Helper()
		if !slices.Equal(events, want) {
			t.Fatalf("heard %v, want %v", events, want)
		}
	}
	s := &readStream{a: a}
	large := binary.AppendUvarint(nil, 4*testLarge) // two bytes
	inReads := func() bool { _, ok := a.reads[s]; return ok }
	now := time.Now()
	s.follow(append(binary.AppendUvarint(nil, 3), 'x', 'y', 'z', large[0]), now) // a small frame, half a length
	if inReads() {
		t.Fatal("a small frame and half a length count as a large frame")
	}
	heard()
	s.follow(large[1:], now)
	heard("started")
	if !inReads() || s.read != 0 {
		t.Fatalf("a large frame's length read whole: counted %v, %d bytes", inReads(), s.read)
	}
	s.follow(make([]byte, 3*testLarge), now)
	if !inReads() || s.read != 3*testLarge {
		t.Fatalf("three quarters of the frame: counted %v, %d bytes", inReads(), s.read)
	}
	s.follow(append(make([]byte, testLarge), binary.AppendUvarint(nil, 1)...), now) // its end and the next length
	if inReads() || s.remaining != 1 {
		t.Fatalf("the frame ended: still counted %v; next frame %d bytes, want 1", inReads(), s.remaining)
	}
	heard("started", "ended")
	s.follow(append([]byte{'x'}, large...), now) // the small frame, and another large one begins
	s.follow(make([]byte, testLarge), now)
	heard("started", "ended", "started")
	s.end() // its stream ends in the middle of it
	s.end()
	heard("started", "ended", "started", "ended")
}

// blockSender streams a frame of size bytes to b on pid, a chunk every
// interval, until the returned stop is called (at the latest when the
// test ends).
func blockSender(t *testing.T, a, b host.Host, pid protocol.ID, size, chunk int, interval time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.NewStream(ctx, b.ID(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(binary.AppendUvarint(nil, uint64(size))); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer s.Reset()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for sent := 0; sent < size; sent += chunk {
			if _, err := s.Write(bytes.Repeat([]byte{'b'}, min(chunk, size-sent))); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-done:
				return
			}
		}
		<-done
	}()
	t.Cleanup(wg.Wait)
	t.Cleanup(stop) // runs first
	return stop
}

// askingNode is b with asks following its inbound streams on pid, read
// to the end, as pubsub's handler reads them.
func askingNode(t *testing.T, b host.Host, pid protocol.ID, hold time.Duration) *asks {
	t.Helper()
	a := newTestAsks(hold)
	readAll(t, b, pid, a, nil)
	return a
}

// readAll has b read every stream on pid to its end, followed by a,
// counting the bytes in read if it is not nil.
func readAll(t *testing.T, b host.Host, pid protocol.ID, a *asks, read *atomic.Int64) {
	t.Helper()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		closed bool
	)
	readingHost{Host: b, a: a}.SetStreamHandler(pid, func(s network.Stream) {
		defer s.Reset()
		mu.Lock()
		if closed {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if read != nil {
				read.Add(int64(n))
			}
			if err != nil {
				return
			}
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		mu.Unlock()
		wg.Wait()
	})
}

// awaitReceiving waits until a says whether a large frame is arriving is
// want, for at most within.
func awaitReceiving(t *testing.T, a *asks, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for a.receiving(time.Now()) != want {
		if time.Since(start) > within {
			t.Fatalf("receiving is not %v after %v", want, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// On real hosts: while a validator streams a block to b on track, b's
// RPCs leave without their IWANTs, small and large alike; once it stops,
// they leave whole.
func TestANodeReceivingABlockDoesNotAskUntilItStops(t *testing.T) {
	const pid = "/test/block"
	a, b := newHost(t), newHost(t)
	connect(t, a, b)
	asks := askingNode(t, b, pid, 10*time.Second)
	stop := blockSender(t, a, b, pid, 4<<20, 16<<10, 20*time.Millisecond) // 800 KiB/s, on track for 10 s
	awaitReceiving(t, asks, true, 5*time.Second)
	ctl := streamTo(t, b, a, "/test/ctl", closedChan())
	u := newTestUplink(t, time.Second, nil)
	u.asks = asks
	ask := rpcFrame(t, &pb.RPC{Control: &pb.ControlMessage{Iwant: []*pb.ControlIWant{{MessageIDs: []string{"m"}}}}})
	if n, err := u.write(ctl, ask); err != nil || n != len(ask) || asks.held.Load() != 1 {
		t.Fatalf("an IWANT while a block arrives: wrote %d of %d (%v), %d held; want nothing written, 1 held", n, len(ask), err, asks.held.Load())
	}
	large := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('x')}, Control: &pb.ControlMessage{Iwant: []*pb.ControlIWant{{MessageIDs: []string{"m"}}}}})
	if out, changed := u.withoutDeclined(a.ID(), large); !changed || !proto.Equal(decodeFrame(t, out), &pb.RPC{Publish: []*pb.Message{message('x')}}) {
		t.Fatal("an IWANT riding on a large RPC was not left out")
	}
	var st Stats
	u.fill(&st)
	if st.IWantsHeld != 2 {
		t.Fatalf("Stats.IWantsHeld %d, want 2", st.IWantsHeld)
	}
	stop()
	awaitReceiving(t, asks, false, 5*time.Second)
	if out, changed := asks.filter(ask, time.Now()); changed || !bytes.Equal(out, ask) {
		t.Fatal("an IWANT after the block stopped was changed")
	}
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// On real hosts, the attacks: a validator that trickles a large frame
// below AskMinRate holds back nothing past the first 250ms, and one that
// opens stream after stream, each with a large frame's length alone,
// holds them back once in two holds at most, for 250ms.
func TestAValidatorHoldsAsksBackOnlyOnTrackAndOnceInTwoHolds(t *testing.T) {
	t.Run("a trickle below AskMinRate", func(t *testing.T) {
		const pid = "/test/trickle"
		a, b := newHost(t), newHost(t)
		connect(t, a, b)
		asks := askingNode(t, b, pid, 10*time.Second)
		blockSender(t, a, b, pid, 4<<20, 1<<10, 50*time.Millisecond) // 20 KiB/s
		awaitFollowed(t, asks)
		// Judged after askGrace; the bound leaves room for a loaded machine
		// (without the rate the frame would count for the whole hold, 10s).
		if held := awaitReceiving(t, asks, false, 2*time.Second); held > 2*time.Second {
			t.Fatalf("held back for %v", held)
		}
		if asks.receiving(time.Now()) {
			t.Fatal("the trickle holds again")
		}
	})
	t.Run("a length alone on stream after stream", func(t *testing.T) {
		const pid = "/test/lengths"
		const hold = 3 * time.Second
		a, b := newHost(t), newHost(t)
		connect(t, a, b)
		asks := askingNode(t, b, pid, hold)
		start := time.Now()
		for time.Since(start) < 2*time.Second {
			blockSender(t, a, b, pid, 1<<20, 1, time.Hour) // a length, a byte, then nothing
			// The first frame stops counting after askGrace; the bound leaves
			// room for a loaded machine. Were each stream's frame counted, it
			// would hold throughout.
			if d := time.Since(start); d > 1200*time.Millisecond && asks.receiving(time.Now()) {
				t.Fatalf("still holding %v after the first length, with a new stream every 100ms", d)
			}
			time.Sleep(100 * time.Millisecond) // the attacker's pace
		}
	})
}

// awaitFollowed waits until a frame is counted.
func awaitFollowed(t *testing.T, a *asks) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		a.mu.Lock()
		n := len(a.reads)
		a.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("no frame was followed")
		}
	}
}

// On real hosts, the attack: a peer outside the validator set streams
// a large frame fast; it holds nothing back.
func TestOnlyAValidatorsFramesHoldAsksBack(t *testing.T) {
	const pid = "/test/outsider"
	a, b := newHost(t), newHost(t)
	connect(t, a, b)
	g := DefaultGossipParams()
	g.LargeBytes = testLarge
	asks := newAsks(g, func(p peer.ID) bool { return p != a.ID() })
	var read atomic.Int64
	readAll(t, b, pid, asks, &read)
	blockSender(t, a, b, pid, 4<<20, 16<<10, 10*time.Millisecond)
	for start := time.Now(); read.Load() < 256<<10; time.Sleep(5 * time.Millisecond) {
		if asks.receiving(time.Now()) {
			t.Fatal("a frame from outside the set holds IWANTs back")
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("read %d bytes in 5 s", read.Load())
		}
	}
	asks.mu.Lock()
	n := len(asks.reads)
	asks.mu.Unlock()
	if n != 0 || asks.receiving(time.Now()) {
		t.Fatalf("after 256 KiB of a frame from outside the set: %d frames followed, receiving %v", n, asks.receiving(time.Now()))
	}
}
