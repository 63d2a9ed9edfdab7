package background

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A write to a busy peer waits until the peer's notice runs out, capped
// at the hold, or until the peer has declined what it carries; nobody
// else's notice holds it (virtual time).
func TestAWriteToABusyPeerWaitsForItsNoticeOrItsDecline(t *testing.T) {
	const hold = time.Second
	const p, other = peer.ID("p"), peer.ID("other")
	for _, tt := range []struct {
		name    string
		notices func(b *busyWrites, now time.Time)
		decline time.Duration // when p declines; 0: never
		closeAt time.Duration // when done closes; 0: never
		renew   time.Duration // p renews its notice this often, ten times; 0: never
		waited  time.Duration
	}{
		{name: "a peer that said nothing is written to at once", waited: 0},
		{name: "a notice holds the write for its time", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, 400*time.Millisecond, now)
		}, waited: 400 * time.Millisecond},
		{name: "a notice longer than the hold is capped", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, time.Hour, now)
		}, waited: hold},
		{name: "a shorter notice does not shorten an earlier one", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, 800*time.Millisecond, now)
			b.notice(p, 100*time.Millisecond, now)
		}, waited: 800 * time.Millisecond},
		{name: "the peer's decline ends the hold", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, time.Hour, now)
		}, decline: 300 * time.Millisecond, waited: 300 * time.Millisecond},
		{name: "another peer's notice holds nothing", notices: func(b *busyWrites, now time.Time) {
			b.notice(other, time.Hour, now)
		}, waited: 0},
		{name: "a write is held at most three holds however often its peer renews", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, time.Hour, now)
		}, renew: 500 * time.Millisecond, waited: busyWriteHolds * hold},
		{name: "another peer's decline does not end the hold", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, 600*time.Millisecond, now)
			b.notice(other, time.Hour, now)
			time.AfterFunc(100*time.Millisecond, func() { b.declined(other) })
		}, waited: 600 * time.Millisecond},
		{name: "closing ends the hold", notices: func(b *busyWrites, now time.Time) {
			b.notice(p, time.Hour, now)
		}, closeAt: 200 * time.Millisecond, waited: 200 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBusyWrites(hold)
				start := time.Now()
				if tt.notices != nil {
					tt.notices(b, start)
				}
				var declined atomic.Bool
				if tt.decline > 0 {
					time.AfterFunc(tt.decline, func() { declined.Store(true); b.declined(p) })
				}
				if tt.renew > 0 {
					for i := range 10 {
						time.AfterFunc(time.Duration(i+1)*tt.renew, func() { b.notice(p, time.Hour, time.Now()) })
					}
				}
				done := make(chan struct{})
				if tt.closeAt > 0 {
					time.AfterFunc(tt.closeAt, func() { close(done) })
				}
				b.wait(p, declined.Load).await(done)
				if got := time.Since(start); got != tt.waited {
					t.Fatalf("waited %v, want %v", got, tt.waited)
				}
				if held := b.held.Load(); held != map[bool]uint64{true: 1}[tt.waited > 0] {
					t.Fatalf("%d writes counted as held", held)
				}
			})
		})
	}
}

// The notices heard are forgotten once they run out: a peer that sends
// one after another, each under a new name, does not grow the memory.
func TestTheNoticesHeardAreForgottenOnceTheyRunOut(t *testing.T) {
	b := newBusyWrites(time.Second)
	now := time.Now()
	for i := range 10 * busySweep {
		b.notice(peer.ID(fmt.Sprint(i)), time.Second, now.Add(time.Duration(i)*time.Second))
	}
	if n := len(b.peers); n > busySweep {
		t.Fatalf("%d notices remembered, want at most %d", n, busySweep)
	}
	if b.heard.Load() != 10*busySweep {
		t.Fatalf("%d notices counted as heard, want %d", b.heard.Load(), 10*busySweep)
	}
	if newBusyWrites(0) != nil {
		t.Fatal("BusyHold 0 heeds notices")
	}
}

// busyUplink is an uplink on a host a that heeds busy notices, with
// streams on proto to two peers: b, whose ID it returns, and another.
func busyUplink(t *testing.T, proto protocol.ID) (u *uplink, b peer.ID, toB, toOther network.Stream) {
	t.Helper()
	a, hb, hc := newHost(t), newHost(t), newHost(t)
	connect(t, a, hb)
	connect(t, a, hc)
	u = newTestUplink(t, 10*time.Second, nil)
	u.busy = newBusyWrites(10 * time.Second)
	return u, hb.ID(), streamTo(t, a, hb, proto, closedChan()), streamTo(t, a, hc, proto, closedChan())
}

// On real hosts: a write to a busy peer is held without holding the turn
// (a write to another peer goes meanwhile), and once the busy peer
// declines the message, the write leaves nothing.
func TestAWriteHeldForABusyPeerLeavesNothingOnceItDeclines(t *testing.T) {
	u, b, toB, toC := busyUplink(t, "/test/busy")
	u.busy.notice(b, 10*time.Second, time.Now())
	frame := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('a')}})
	wrote := make(chan error, 1)
	go func() {
		n, err := u.write(toB, frame)
		if err == nil && n != len(frame) {
			err = fmt.Errorf("reported %d of %d bytes", n, len(frame))
		}
		wrote <- err
	}()
	eventually(t, 5*time.Second, "the write to the busy peer is held", func() bool { return u.busy.held.Load() == 1 })
	if n, err := u.write(toC, frame); err != nil || n != len(frame) {
		t.Fatalf("the write to another peer: %d of %d bytes, %v", n, len(frame), err)
	}
	u.noteDeclines(b, &pb.ControlMessage{Idontwant: []*pb.ControlIDontWant{{MessageIDs: []string{"a"}}}})
	awaitWrite(t, wrote, "its peer declined the message")
	if u.skipped.Load() != 1 || u.busy.held.Load() != 1 {
		t.Fatalf("%d copies left out, %d writes held; want 1 and 1", u.skipped.Load(), u.busy.held.Load())
	}
}

// On real hosts: a write that began to wait for its turn before its peer
// said it was busy does not spend the turn on that peer when it comes:
// it passes the turn on (a write to another peer goes) and is held like
// any other.
func TestAWriteWaitingForItsTurnPassesItOnOnceItsPeerIsBusy(t *testing.T) {
	u, b, toB, toC := busyUplink(t, "/test/busy-turn")
	frame := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('a')}})
	u.turn <- struct{}{} // another write's turn
	wroteB, wroteC := make(chan error, 1), make(chan error, 1)
	go func() { _, err := u.write(toB, frame); wroteB <- err }()
	eventually(t, 5*time.Second, "the write to b waits for its turn", func() bool { return u.waited.Load() == 1 })
	u.busy.notice(b, 10*time.Second, time.Now())
	go func() { _, err := u.write(toC, frame); wroteC <- err }()
	eventually(t, 5*time.Second, "the write to c waits for its turn", func() bool { return u.waited.Load() == 2 })
	<-u.turn // the other write ends
	select {
	case err := <-wroteC:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-wroteB:
		t.Fatalf("the write to the busy peer went first (%v)", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the write to the idle peer did not get the turn")
	}
	// The write to b may take the turn after c's: it is held then.
	eventually(t, 5*time.Second, "the write to the busy peer is held", func() bool { return u.busy.held.Load() == 1 })
	u.noteDeclines(b, &pb.ControlMessage{Idontwant: []*pb.ControlIDontWant{{MessageIDs: []string{"a"}}}})
	awaitWrite(t, wroteB, "its peer declined the message")
	if u.skipped.Load() != 1 {
		t.Fatalf("%d copies left out, want the one to the busy peer", u.skipped.Load())
	}
}

// awaitWrite waits for a held write to end without error, at most 10 s;
// what names what should have let it go.
func awaitWrite(t *testing.T, wrote <-chan error, what string) {
	t.Helper()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the held write did not end when %s", what)
	}
}

// On real routers: a full node that begins to receive a block from a
// validator tells its other mesh peers it is busy, not the validator nor
// a peer of an older release (it does not list BusyProtocolID, and
// would take the notice for a malformed frame); the same from a full
// node, which anyone can run, tells nobody.
func TestAFullNodeTellsItsMeshItIsBusyOnlyWithAValidatorsBlock(t *testing.T) {
	const network = "busy"
	cfg := testConfig(network)
	cfg.Gossip.LargeBytes = 16 << 10
	vcfg := cfg
	vcfg.RainTreeValidator = true
	v := startNodeOn(t, newHostWithConnManager(t), vcfg)
	v.r.SetValidatorIDs(nil, nil)
	f, g, old := startNode(t, cfg), startNode(t, cfg), startNode(t, cfg)
	old.h.RemoveStreamHandler(BusyProtocolID(network))
	ids := []peer.ID{v.h.ID()}
	for _, n := range []*node{f, g, old} {
		n.r.SetValidatorIDs(nil, ids)
	}
	connect(t, f.h, v.h)
	connect(t, f.h, g.h)
	connect(t, f.h, old.h)
	awaitMutualMesh(t, network, f, v, g, old)

	block := func(n *node, payload byte) {
		t.Helper()
		m := envelope(t, n, string(make([]byte, 32<<10))+string(payload))
		if err := n.r.Broadcast(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "f has the block", func() bool { return len(f.in.deliveries(m)) > 0 })
	}
	block(g, 'g')
	if s := f.r.Stats(); s.BusyNoticesSent != 0 || g.r.Stats().BusyNoticesHeard != 0 || v.r.Stats().BusyNoticesHeard != 0 {
		t.Fatalf("a full node's block: f sent %d busy notices", s.BusyNoticesSent)
	}
	block(v, 'v')
	eventually(t, 10*time.Second, "g hears f is busy", func() bool { return g.r.Stats().BusyNoticesHeard == 1 })
	if s := f.r.Stats(); s.BusyNoticesSent != 1 || s.BusyNoticesDropped != 0 || v.r.Stats().BusyNoticesHeard != 0 || old.r.Stats().BusyNoticesHeard != 0 {
		t.Fatalf("a validator's block: f sent %d notices, dropped %d, the validator heard %d, the older peer %d; want 1, 0, 0, 0",
			s.BusyNoticesSent, s.BusyNoticesDropped, v.r.Stats().BusyNoticesHeard, old.r.Stats().BusyNoticesHeard)
	}
}
