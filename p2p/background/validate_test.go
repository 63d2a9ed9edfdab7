package background

import (
	"context"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

func newUnstartedRouter(t testing.TB) *Router {
	t.Helper()
	r, err := New(newHost(t), testConfig("fuzz"), func(peer.ID, []byte, Via) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func remoteMessage(data []byte) *pubsub.Message {
	return &pubsub.Message{Message: &pb.Message{Data: data, From: []byte("remote")}}
}

// The validator accepts exactly what wire.DecodeBackground accepts, and
// counts each rejection under exactly one reason.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	if frame, err := wire.EncodeBackground(envelope(f, "seed")); err == nil {
		f.Add(frame)
	}
	r := newUnstartedRouter(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		before := r.Stats().GossipRejected
		msg := remoteMessage(in)
		got := r.validate(context.Background(), "", msg)
		_, env, err := wire.DecodeBackground(in, r.cfg.MaxMessageSize)
		after := r.Stats().GossipRejected
		counted := (after.Malformed - before.Malformed) + (after.TooLarge - before.TooLarge) +
			(after.Empty - before.Empty) + (after.InvalidEnvelope - before.InvalidEnvelope)
		switch {
		case err == nil && (got != pubsub.ValidationAccept || string(msg.ValidatorData.([]byte)) != string(env)):
			t.Fatalf("valid frame got %v", got)
		case err != nil && (got != pubsub.ValidationReject || counted != 1):
			t.Fatalf("invalid frame (%v) got %v, counted %d times", err, got, counted)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	r := newUnstartedRouter(b)
	frame, err := wire.EncodeBackground(envelope(b, string(make([]byte, 1024))))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if r.validate(context.Background(), "", remoteMessage(frame)) != pubsub.ValidationAccept {
			b.Fatal("rejected a valid frame")
		}
	}
}
