package wire

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func TestAReceiptVerifiesOnlyForItsKeyNetworkAndFrame(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signed := Receipt{ID: MessageID{1, 2, 3}, SpanStart: 5, SpanLen: 9, Level: 2}
	sig, err := SignReceipt(key, testNetwork, signed)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		pub     crypto.PubKey
		network string
		r       Receipt
		sig     []byte
		ok      bool
	}{
		{"the signed frame verifies", key.GetPublic(), testNetwork, signed, sig, true},
		{"another key does not", other.GetPublic(), testNetwork, signed, sig, false},
		{"another network does not", key.GetPublic(), "elsewhere", signed, sig, false},
		{"another message does not", key.GetPublic(), testNetwork, Receipt{ID: MessageID{9}, SpanStart: 5, SpanLen: 9, Level: 2}, sig, false},
		{"another span start does not", key.GetPublic(), testNetwork, Receipt{ID: signed.ID, SpanStart: 6, SpanLen: 9, Level: 2}, sig, false},
		{"another span length does not", key.GetPublic(), testNetwork, Receipt{ID: signed.ID, SpanStart: 5, SpanLen: 8, Level: 2}, sig, false},
		{"another level does not", key.GetPublic(), testNetwork, Receipt{ID: signed.ID, SpanStart: 5, SpanLen: 9, Level: 1}, sig, false},
		{"no signature does not", key.GetPublic(), testNetwork, signed, nil, false},
		{"no key does not", nil, testNetwork, signed, sig, false},
		{"a truncated signature does not", key.GetPublic(), testNetwork, signed, sig[:10], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyReceipt(tt.pub, tt.network, tt.r, tt.sig)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadReceipt)) {
				t.Fatalf("VerifyReceipt = %v, want ok=%v (or ErrBadReceipt)", err, tt.ok)
			}
		})
	}
}
