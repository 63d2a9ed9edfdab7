package background

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

const testLarge = 1 << 10

func newTestUplink(t *testing.T, hold time.Duration, done <-chan struct{}) *uplink {
	t.Helper()
	g := DefaultGossipParams()
	g.LargeBytes, g.LargeWriteHold = testLarge, hold
	u, err := newUplink(g, func(m *pb.Message) string { return string(m.GetData()[:1]) }, 1, done)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// rpcFrame is an RPC as pubsub writes it: varint length, then the RPC.
func rpcFrame(t *testing.T, rpc *pb.RPC) []byte {
	t.Helper()
	b, err := proto.Marshal(rpc)
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.AppendUvarint(nil, uint64(len(b))), b...)
}

func message(id byte) *pb.Message {
	return &pb.Message{Data: append([]byte{id}, bytes.Repeat([]byte{'x'}, testLarge)...)}
}

func TestAWriteLeavesOutWhatItsPeerDeclined(t *testing.T) {
	const p = peer.ID("peer")
	ctl := &pb.ControlMessage{Idontwant: []*pb.ControlIDontWant{{MessageIDs: []string{"z"}}}}
	tests := []struct {
		name     string
		declined []string
		rpc      *pb.RPC
		want     *pb.RPC // nil: nothing written
		changed  bool
	}{
		{"nothing declined goes as it is", nil, &pb.RPC{Publish: []*pb.Message{message('a')}}, &pb.RPC{Publish: []*pb.Message{message('a')}}, false},
		{"a declined message is left out", []string{"a"}, &pb.RPC{Publish: []*pb.Message{message('a'), message('b')}}, &pb.RPC{Publish: []*pb.Message{message('b')}}, true},
		{"an RPC with nothing left is not written", []string{"a"}, &pb.RPC{Publish: []*pb.Message{message('a')}}, nil, true},
		{"control goes without the declined message", []string{"a"}, &pb.RPC{Publish: []*pb.Message{message('a')}, Control: ctl}, &pb.RPC{Control: ctl}, true},
		{"what another peer declined goes", []string{}, &pb.RPC{Publish: []*pb.Message{message('a')}}, &pb.RPC{Publish: []*pb.Message{message('a')}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newTestUplink(t, time.Second, nil)
			u.declined.Add(declinedKey{"another", "a"}, struct{}{})
			for _, id := range tt.declined {
				u.declined.Add(declinedKey{p, id}, struct{}{})
			}
			out, changed := u.withoutDeclined(p, rpcFrame(t, tt.rpc))
			if changed != tt.changed {
				t.Fatalf("changed %v, want %v", changed, tt.changed)
			}
			switch {
			case tt.want == nil && out != nil:
				t.Fatalf("wrote %d bytes, want nothing", len(out))
			case tt.want != nil && !bytes.Equal(out, rpcFrame(t, tt.want)):
				t.Fatal("wrote another RPC than the one without the declined messages")
			}
		})
	}
}

func TestUnwantedMemoryIsBoundedAndCounted(t *testing.T) {
	g := DefaultGossipParams()
	g.UnwantedMemory = 2
	u, err := newUplink(g, func(*pb.Message) string { return "" }, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		u.declined.Add(declinedKey{"p", id}, struct{}{})
	}
	if u.declined.Len() != 2 || u.forgotten.Load() != 1 {
		t.Fatalf("%d remembered, %d forgotten; want 2 and 1", u.declined.Len(), u.forgotten.Load())
	}
}

// streamTo opens a stream from a to b, whose handler on b reads it to the
// end once read is closed. It returns once the handler runs: a stream to
// a peer known to speak its protocol is negotiated lazily, with its first
// write, so without the byte written here a test that writes nothing on
// it (a held write left with nothing) would leave b no stream to handle,
// and the cleanup waiting for the handler would wait forever.
func streamTo(t *testing.T, a, b host.Host, proto protocol.ID, read <-chan struct{}) network.Stream {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1) // one stream
	opened := make(chan struct{})
	b.SetStreamHandler(proto, func(s network.Stream) {
		defer wg.Done()
		defer s.Reset()
		close(opened)
		<-read
		_, _ = io.Copy(io.Discard, s)
	})
	t.Cleanup(wg.Wait)
	// As if identify had told a already: the negotiation is always lazy.
	if err := a.Peerstore().AddProtocols(b.ID(), proto); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := a.NewStream(ctx, b.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	if _, err := s.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the stream's handler did not run")
	}
	return s
}

// Large writes take turns: the second waits for the first, and a first
// that stalls (its reader reads nothing) holds the turn only for
// LargeWriteHold. Small writes never wait.
func TestLargeWritesTakeTurnsForAtMostTheHold(t *testing.T) {
	const hold = 2 * time.Second
	a, b, c := newHost(t), newHost(t), newHost(t)
	connect(t, a, b)
	connect(t, a, c)
	stalled, reading := make(chan struct{}), make(chan struct{})
	close(reading)
	slow := streamTo(t, a, b, "/test/slow", stalled)
	fast := streamTo(t, a, c, "/test/fast", reading)
	t.Cleanup(func() { close(stalled) }) // first, so b's handler can end
	u := newTestUplink(t, hold, nil)
	// Over the flow-control windows, so that the slow write blocks.
	big := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{{Data: bytes.Repeat([]byte{'s'}, 32<<20)}}})
	before := time.Now()
	go func() { _, _ = u.write(slow, big) }()
	deadline := time.Now().Add(hold / 2)
	for len(u.turn) == 0 && time.Now().Before(deadline) { // the slow write takes the turn
		time.Sleep(time.Millisecond)
	}
	if len(u.turn) == 0 {
		t.Skip("the slow write did not take its turn within half the hold: too loaded to tell")
	}
	if _, err := u.write(fast, rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('f')}})); err != nil {
		t.Fatal(err)
	}
	// The slow write took its turn after before, and kept it for the hold.
	if since := time.Since(before); since < hold || u.waited.Load() != 1 {
		t.Fatalf("the second write ended %v after the first began (waited %d times); want the hold, %v, once", since, u.waited.Load(), hold)
	}
	start := time.Now()
	if _, err := u.write(fast, []byte("small")); err != nil || u.waited.Load() != 1 {
		t.Fatalf("a small write: %v after %v, %d waits", err, time.Since(start), u.waited.Load())
	}
}

// A large write waiting for its turn ends when the uplink closes, and
// one that comes after never begins, even with the turn free.
func TestAWriteWaitingForItsTurnEndsAtClose(t *testing.T) {
	a, b := newHost(t), newHost(t)
	connect(t, a, b)
	s := streamTo(t, a, b, "/test/close", closedChan())
	done := make(chan struct{})
	u := newTestUplink(t, time.Hour, done)
	u.turn <- struct{}{} // someone else's turn, for an hour
	errs := make(chan error, 1)
	frame := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('a')}})
	go func() {
		_, err := u.write(s, frame)
		errs <- err
	}()
	close(done)
	if err := <-errs; !errors.Is(err, errUplinkClosed) {
		t.Fatalf("err %v, want errUplinkClosed", err)
	}
	<-u.turn // the turn is free now
	if n, err := u.write(s, frame); n != 0 || !errors.Is(err, errUplinkClosed) {
		t.Fatalf("a write after close: wrote %d, err %v; want 0, errUplinkClosed", n, err)
	}
}

// A write never waits for its turn longer than the hold, however many
// slow writes are ahead of it: then it goes beside them.
func TestAWriteWaitsForItsTurnAtMostTheHold(t *testing.T) {
	const hold = 200 * time.Millisecond
	a, b := newHost(t), newHost(t)
	connect(t, a, b)
	reading := make(chan struct{})
	close(reading)
	s := streamTo(t, a, b, "/test/beside", reading)
	u := newTestUplink(t, hold, nil)
	u.turn <- struct{}{} // writes ahead that never end
	start := time.Now()
	frame := rpcFrame(t, &pb.RPC{Publish: []*pb.Message{message('a')}})
	if n, err := u.write(s, frame); err != nil || n != len(frame) {
		t.Fatalf("wrote %d of %d: %v", n, len(frame), err)
	}
	if waited := time.Since(start); waited < hold || u.overtook.Load() != 1 {
		t.Fatalf("waited %v, overtook %d times; want the hold, %v, once", waited, u.overtook.Load(), hold)
	}
}

// The IDONTWANTs noted are only IDs of the network's length, at most
// pubsub's per-RPC cap of them, so a peer cannot fill the memory with
// large IDs, nor push out every other peer's with one RPC.
func TestOnlyWellFormedDeclinesAreNotedWithinPubsubsCap(t *testing.T) {
	u := newTestUplink(t, time.Second, nil) // IDs of one byte
	ids := []string{"long id"}
	for i := range pubsub.GossipSubMaxIDontWantLength + 5 {
		ids = append(ids, string(rune('a'+i)))
	}
	u.recv(&pubsub.RPC{RPC: pb.RPC{Control: &pb.ControlMessage{Idontwant: []*pb.ControlIDontWant{{MessageIDs: ids}}}}})
	if n := u.declined.Len(); n != pubsub.GossipSubMaxIDontWantLength {
		t.Fatalf("%d declines noted, want %d", n, pubsub.GossipSubMaxIDontWantLength)
	}
	if u.declinedBy("", "long id") {
		t.Fatal("an ID of another length was noted")
	}
}
