package wire

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustEnvelope(t testing.TB, payload []byte) *Envelope {
	t.Helper()
	e, err := NewEnvelope(wrapperspb.Bytes(payload))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestNewEnvelopeGivesDistinctNonZeroNonces(t *testing.T) {
	seen := map[uint64]bool{}
	for range 1000 {
		e := mustEnvelope(t, []byte("x"))
		if e.GetNonce() == 0 || seen[e.GetNonce()] {
			t.Fatalf("nonce %d is zero or repeated", e.GetNonce())
		}
		seen[e.GetNonce()] = true
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e := mustEnvelope(t, []byte("hello"))
	b, err := EncodeEnvelope(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEnvelope(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, e) {
		t.Fatalf("round trip changed the envelope: %v != %v", got, e)
	}
	bg, err := EncodeBackground(b)
	if err != nil {
		t.Fatal(err)
	}
	got2, raw, err := DecodeBackground(bg, 0)
	if err != nil || !proto.Equal(got2, e) || !bytes.Equal(raw, b) {
		t.Fatalf("background round trip: %v %v", got2, err)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	noNonce, _ := proto.Marshal(&Envelope{Content: mustEnvelope(t, []byte("a")).Content})
	noContent, _ := proto.Marshal(&Envelope{Nonce: 7})
	big, _ := EncodeEnvelope(mustEnvelope(t, make([]byte, 2000)), 0)
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty data is rejected", nil, 0, ErrEmpty},
		{"garbage is malformed", []byte{0xff, 0xff, 0xff}, 0, ErrMalformed},
		{"a zero nonce is rejected", noNonce, 0, ErrZeroNonce},
		{"missing content is rejected", noContent, 0, ErrNoContent},
		{"an envelope over the limit is too large", big, 1000, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeEnvelope(tt.in, tt.max); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeRefusesInvalidEnvelopes(t *testing.T) {
	if _, err := EncodeEnvelope(&Envelope{Nonce: 1}, 0); !errors.Is(err, ErrNoContent) {
		t.Fatalf("got %v", err)
	}
	if _, err := EncodeEnvelope(mustEnvelope(t, make([]byte, 100)), 50); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	if _, err := EncodeBackground(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %v", err)
	}
}

func FuzzDecodeBackground(f *testing.F) {
	b, _ := EncodeEnvelope(mustEnvelope(f, []byte("seed")), 0)
	bg, _ := EncodeBackground(b)
	f.Add(bg)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, raw, err := DecodeBackground(in, 1<<16)
		if err == nil && (e.Check() != nil || len(raw) == 0) {
			t.Fatalf("accepted an invalid envelope: %v", e)
		}
	})
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	e := mustEnvelope(b, make([]byte, 1024))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEnvelope(e, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	raw, _ := EncodeEnvelope(mustEnvelope(b, make([]byte, 1024)), 0)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(raw, 0); err != nil {
			b.Fatal(err)
		}
	}
}
