package identity

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestAddressAndPeerIDAgree(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	fromID, err := AddressFromPeerID(k.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	if fromID != k.Address {
		t.Fatalf("address from peer ID %s != %s", fromID, k.Address)
	}
	pub, err := ParsePublicKey(PublicKeyHex(k.Private.GetPublic()))
	if err != nil {
		t.Fatal(err)
	}
	id, err := PeerIDFromPublicKey(pub)
	if err != nil || id != k.PeerID {
		t.Fatalf("peer ID from public key: %s %v", id, err)
	}
}

func TestParseAddress(t *testing.T) {
	k, _ := GenerateKey()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex round trips", k.Address.String(), true},
		{"0x prefix is accepted", "0x" + k.Address.String(), true},
		{"short hex is rejected", "abcd", false},
		{"non-hex is rejected", "zz" + k.Address.String()[2:], false},
		{"empty is rejected", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseAddress(tt.in)
			if tt.ok && (err != nil || a != k.Address) {
				t.Fatalf("got %s %v", a, err)
			}
			if !tt.ok && !errors.Is(err, ErrBadAddress) {
				t.Fatalf("got %v, want ErrBadAddress", err)
			}
		})
	}
}

func TestKeyFileRoundTripAndNoOverwrite(t *testing.T) {
	k, _ := GenerateKey()
	path := filepath.Join(t.TempDir(), "sub", "key.json")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != k.Address || got.PeerID != k.PeerID {
		t.Fatalf("loaded %s/%s, want %s/%s", got.Address, got.PeerID, k.Address, k.PeerID)
	}
	if err := k.Save(path); err == nil {
		t.Fatal("Save overwrote an existing key file")
	}
}
