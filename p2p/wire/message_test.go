package wire

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

const testNetwork = "wire-test"

func testKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sealed(t testing.TB, key crypto.PrivKey, payload string) *Message {
	t.Helper()
	e, err := NewEnvelope(wrapperspb.String(payload))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Seal(testNetwork, e, key, identity.Address{}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSealThenOpenNamesTheOriginator(t *testing.T) {
	key := testKey(t)
	m := sealed(t, key, "hello")
	got, err := Open(testNetwork, bytes.Clone(m.Raw), 0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := identity.AddressFromPublicKey(key.GetPublic())
	if got.Origin != want || got.ID != m.ID || got.ID != ComputeID(testNetwork, m.Envelope) {
		t.Fatalf("opened origin %s id %s; want %s and %s", got.Origin, got.ID, want, m.ID)
	}
	if d := time.Since(got.CreatedAt); d < 0 || d > time.Minute {
		t.Fatalf("created at %v", got.CreatedAt)
	}
}

// Every signed field matters: changing any of them after signing makes the
// signature fail, so a relay cannot alter a message undetected.
func TestAlteredEnvelopesFailVerification(t *testing.T) {
	key := testKey(t)
	other, _ := crypto.MarshalPublicKey(testKey(t).GetPublic())
	tests := []struct {
		name    string
		network string
		alter   func(e *Envelope)
		want    error
	}{
		{"other content value", testNetwork, func(e *Envelope) { e.Content.Value = append(bytes.Clone(e.Content.Value), 'x') }, ErrBadSignature},
		{"other content type", testNetwork, func(e *Envelope) { e.Content.TypeUrl += "x" }, ErrBadSignature},
		{"other nonce", testNetwork, func(e *Envelope) { e.Nonce++ }, ErrBadSignature},
		{"other creation time", testNetwork, func(e *Envelope) { e.CreatedAt++ }, ErrBadSignature},
		{"other origin", testNetwork, func(e *Envelope) { e.Origin = other }, ErrBadSignature},
		{"other signature", testNetwork, func(e *Envelope) { e.Signature = bytes.Clone(e.Signature); e.Signature[5] ^= 1 }, ErrBadSignature},
		{"truncated signature", testNetwork, func(e *Envelope) { e.Signature = e.Signature[:63] }, ErrBadSignature},
		{"other network", "elsewhere", func(*Envelope) {}, ErrBadSignature},
		{"short origin", testNetwork, func(e *Envelope) { e.Origin = e.Origin[:31] }, ErrBadOrigin},
		{"added recipient", testNetwork, func(e *Envelope) { e.Recipient = make([]byte, 20); e.Recipient[0] = 1 }, ErrBadSignature},
		{"recipient of the wrong length", testNetwork, func(e *Envelope) { e.Recipient = []byte{1} }, ErrMalformed},
		{"no creation time", testNetwork, func(e *Envelope) { e.CreatedAt = 0 }, ErrNoCreatedAt},
		{"unsigned", testNetwork, func(e *Envelope) { e.Origin, e.Signature = nil, nil }, ErrUnsigned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := proto.Clone(sealed(t, key, "genuine").Envelope).(*Envelope)
			tt.alter(e)
			raw, err := proto.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Open(tt.network, raw, 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !IsInvalid(err) {
				t.Fatalf("%v is not classed as invalid", err)
			}
		})
	}
}

// The message ID is the signed digest; the gossip ID also covers the
// signature, so a copy with a bad signature is another gossip message.
func TestGossipIDCoversTheSignatureAndMessageIDDoesNot(t *testing.T) {
	m := sealed(t, testKey(t), "id")
	e := proto.Clone(m.Envelope).(*Envelope)
	e.Signature = bytes.Clone(e.Signature)
	e.Signature[0] ^= 1
	if GossipID(testNetwork, e) == GossipID(testNetwork, m.Envelope) {
		t.Fatal("a copy with another signature has the same gossip ID")
	}
	if ComputeID(testNetwork, e) != m.ID {
		t.Fatal("the message ID depends on the signature")
	}
	if ComputeID("elsewhere", m.Envelope) == m.ID {
		t.Fatal("the ID does not depend on the network")
	}
}

func TestSealKeepsAnEnvelopeSignedByAnother(t *testing.T) {
	m := sealed(t, testKey(t), "relay me")
	again, err := Seal(testNetwork, m.Envelope, testKey(t), identity.Address{}, time.Now().Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != m.ID || again.Origin != m.Origin {
		t.Fatal("re-sealing changed a signed envelope")
	}
}

// Full nodes of other implementations may hold other key types: they sign
// with them, and the origin is their documented address.
func TestOtherKeyTypesSign(t *testing.T) {
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsa, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []crypto.PrivKey{secp, ecdsa} {
		m := sealed(t, k, "x")
		want, _ := identity.AddressFromPublicKey(k.GetPublic())
		if got, err := Open(testNetwork, m.Raw, 0); err != nil || got.Origin != want {
			t.Fatalf("%v key: origin %v, %v; want %s", k.Type(), got, err, want)
		}
	}
	e, _ := NewEnvelope(wrapperspb.String("x"))
	if err := Sign(testNetwork, e, nil, identity.Address{}, time.Now()); !errors.Is(err, identity.ErrBadKey) {
		t.Fatalf("no key: got %v, want ErrBadKey", err)
	}
}

func TestSealBindsAUnicastToItsRecipient(t *testing.T) {
	key := testKey(t)
	to := identity.Address{1, 2, 3}
	e, _ := NewEnvelope(wrapperspb.String("x"))
	m, err := Seal(testNetwork, e, key, to, time.Now(), 0)
	if err != nil || m.Recipient != to || !m.IsUnicast() {
		t.Fatalf("sealed %+v, %v", m, err)
	}
	if _, err := Seal(testNetwork, m.Envelope, key, identity.Address{9}, time.Now(), 0); !errors.Is(err, ErrMisdirected) {
		t.Fatalf("re-sending to another node: got %v, want ErrMisdirected", err)
	}
}

// The parser is stricter than proto.Unmarshal where the two could
// disagree on what was signed.
func TestParserRefusesAmbiguousEncodings(t *testing.T) {
	m := sealed(t, testKey(t), "strict")
	tests := []struct {
		name string
		raw  []byte
	}{
		{"a repeated nonce", append(bytes.Clone(m.Raw), 0x10, 0x01)},
		{"a repeated content", append(bytes.Clone(m.Raw), 0x0a, 0x00)},
		{"a nonce with the wrong wire type", append(bytes.Clone(m.Raw), 0x12, 0x00)},
		{"a type URL that is not UTF-8", func() []byte {
			e := proto.Clone(m.Envelope).(*Envelope)
			e.Content = &anypb.Any{TypeUrl: "x", Value: []byte("v")}
			b, _ := proto.Marshal(e)
			i := bytes.Index(b, []byte{0x0a, 0x01, 'x'})
			b[i+2] = 0xff
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeEnvelope(tt.raw, 0); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// Unknown fields are skipped, so later versions can add some.
	withUnknown := append(bytes.Clone(m.Raw), 0xa0, 0x06, 0x01) // field 100, varint 1
	got, err := Open(testNetwork, withUnknown, 0)
	if err != nil || got.ID != m.ID {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestBackgroundMessageIDOfGarbageIsNeverAMessageID(t *testing.T) {
	m := sealed(t, testKey(t), "x")
	frame, _ := EncodeBackground(m.Raw)
	if g := GossipID(testNetwork, m.Envelope); BackgroundMessageID(testNetwork, frame) != string(g[:]) {
		t.Fatal("frame ID is not the gossip ID")
	}
	if a, b := BackgroundMessageID(testNetwork, []byte{0xff}), BackgroundMessageID(testNetwork, []byte{0xfe}); a == b || len(a) != IDLen {
		t.Fatal("garbage frames share an ID")
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		m := sealed(b, testKey(b), string(make([]byte, size)))
		b.Run(byteSize(size), func(b *testing.B) {
			b.SetBytes(int64(len(m.Raw)))
			for b.Loop() {
				if _, err := Open(testNetwork, m.Raw, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return "1MiB"
	}
	return "1KiB"
}
