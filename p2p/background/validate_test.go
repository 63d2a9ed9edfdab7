package background

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
	"github.com/rainp2p/rainp2p/p2p/wire"
)

func newUnstartedRouter(t testing.TB) *Router {
	t.Helper()
	r, err := New(newHost(t), testConfig("fuzz"), func(peer.ID, *wire.Message, Via, wire.Handover) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func remoteMessage(data []byte) *pubsub.Message {
	return &pubsub.Message{Message: &pb.Message{Data: data}, ReceivedFrom: "remote"}
}

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The validator accepts exactly what wire.OpenBackground accepts (all
// fresh here), and counts each rejection under exactly one reason.
func FuzzValidate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	if frame, err := wire.EncodeBackground(signed(f, testKey(f), "fuzz", "seed").Raw); err == nil {
		f.Add(frame)
	}
	r := newUnstartedRouter(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		before := r.Stats().GossipRejected
		msg := remoteMessage(in)
		got := r.validate(context.Background(), "", msg)
		want, err := wire.OpenBackground(r.cfg.NetworkID, in, r.cfg.MaxMessageSize)
		after := r.Stats().GossipRejected
		counted := (after.Malformed - before.Malformed) + (after.TooLarge - before.TooLarge) +
			(after.Empty - before.Empty) + (after.InvalidEnvelope - before.InvalidEnvelope) + (after.Signature - before.Signature)
		switch {
		case err == nil && r.fresh(want.CreatedAt) != nil:
			if got != pubsub.ValidationIgnore {
				t.Fatalf("stale frame got %v", got)
			}
		case err == nil && (got != pubsub.ValidationAccept || msg.ValidatorData.(*wire.Message).ID != want.ID):
			t.Fatalf("valid frame got %v", got)
		case err != nil && (got != pubsub.ValidationReject || counted != 1):
			t.Fatalf("invalid frame (%v) got %v, counted %d times", err, got, counted)
		}
	})
}

func TestValidateIgnoresStaleAndRejectsForged(t *testing.T) {
	r := newUnstartedRouter(t)
	key := testKey(t)
	at := func(created time.Time, payload string) []byte {
		e, err := wire.NewEnvelope(wrapperspb.String(payload))
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.Seal(r.cfg.NetworkID, e, key, identity.Address{}, created, 0)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := wire.EncodeBackground(m.Raw)
		return f
	}
	other := at(time.Now(), "x")
	m, _ := wire.OpenBackground(r.cfg.NetworkID, other, 0)
	forged := proto.Clone(m.Envelope).(*wire.Envelope)
	forged.Nonce++ // same signature, other nonce: a forgery
	forgedFrame := backgroundFrame(t, forged)
	tests := []struct {
		name  string
		frame []byte
		want  pubsub.ValidationResult
	}{
		{"a fresh signed message is accepted", at(time.Now(), "a"), pubsub.ValidationAccept},
		{"a message older than the window is ignored, not penalised", at(time.Now().Add(-r.cfg.ReplayWindow-r.cfg.ClockSkew-time.Minute), "b"), pubsub.ValidationIgnore},
		{"a message from beyond the skew is ignored", at(time.Now().Add(r.cfg.ClockSkew+time.Minute), "c"), pubsub.ValidationIgnore},
		{"a message from another network is rejected", func() []byte {
			return func() []byte {
				mm := signed(t, key, "elsewhere", "d")
				f, _ := wire.EncodeBackground(mm.Raw)
				return f
			}()
		}(), pubsub.ValidationReject},
		{"a forged nonce under a genuine signature is rejected", forgedFrame, pubsub.ValidationReject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.validate(context.Background(), "", remoteMessage(tt.frame)); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if st := r.Stats(); st.GossipStale != 2 || st.GossipRejected.Signature != 2 {
		t.Fatalf("stale %d, signature rejections %d; want 2 and 2", st.GossipStale, st.GossipRejected.Signature)
	}
}

// The gossip message ID is the envelope's gossip ID, and a copy with an
// altered signature has another one.
func TestGossipMessageIDIsTheEnvelopeGossipID(t *testing.T) {
	r := newUnstartedRouter(t)
	m := signed(t, testKey(t), r.cfg.NetworkID, "id")
	frame, _ := wire.EncodeBackground(m.Raw)
	want := wire.GossipID(r.cfg.NetworkID, m.Envelope)
	if got := r.messageID(&pb.Message{Data: frame}); got != string(want[:]) {
		t.Fatalf("gossip ID %x, want %x", got, want)
	}
	e := proto.Clone(m.Envelope).(*wire.Envelope)
	e.Signature = append([]byte(nil), e.Signature...)
	e.Signature[0] ^= 1
	if got := r.messageID(&pb.Message{Data: backgroundFrame(t, e)}); got == string(want[:]) {
		t.Fatal("a copy with another signature has the genuine ID")
	}
}

func BenchmarkValidate(b *testing.B) {
	r := newUnstartedRouter(b)
	frame, err := wire.EncodeBackground(signed(b, testKey(b), r.cfg.NetworkID, string(make([]byte, 1024))).Raw)
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
