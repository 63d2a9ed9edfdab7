package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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

// TestAddressDerivationVectors pins the documented derivation for each key
// family: raw ed25519 keys, and the protobuf encoding of any other type.
func TestAddressDerivationVectors(t *testing.T) {
	ed, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	secp, err := crypto.UnmarshalSecp256k1PrivateKey(bytes.Repeat([]byte{2}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PubKey
		want string
	}{
		{"ed25519 hashes the raw key", ed.GetPublic(), "34750f98bd59fcfc946da45aaabe933be154a4b5"},
		{"secp256k1 hashes the protobuf-encoded key", secp.GetPublic(), "5b8de65f8176a81bb34b80367c9b59806278019c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := AddressFromPublicKey(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if a.String() != tt.want {
				t.Fatalf("address %s, want %s", a, tt.want)
			}
			id, err := peer.IDFromPublicKey(tt.pub)
			if err != nil {
				t.Fatal(err)
			}
			if fromID, err := AddressFromPeerID(id); err != nil || fromID != a {
				t.Fatalf("address from the peer ID: %s, %v", fromID, err)
			}
		})
	}
}

func TestEveryKeyTypeGetsANonZeroAddress(t *testing.T) {
	for _, typ := range []int{crypto.Ed25519, crypto.Secp256k1, crypto.ECDSA, crypto.RSA} {
		priv, _, err := crypto.GenerateKeyPairWithReader(typ, 2048, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := KeyFromPrivate(priv)
		if err != nil {
			t.Fatalf("key type %d: %v", typ, err)
		}
		if k.Address.IsZero() {
			t.Fatalf("key type %d: zero address", typ)
		}
	}
}

func TestAddressFromPeerIDRefusesHashedIDs(t *testing.T) {
	priv, _, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AddressFromPeerID(id); !errors.Is(err, ErrBadKey) {
		t.Fatalf("an ECDSA peer ID does not embed its key; got %v, want ErrBadKey", err)
	}
}

// A key file whose public half, public_key, peer_id or address is not the
// private key's own is refused: the node would run under one identity
// while the operator copies another.
func TestAKeyFileThatDisagreesWithItselfIsRefused(t *testing.T) {
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := k.Save(good); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		t.Fatal(err)
	}
	otherPub := PublicKeyHex(other.Private.GetPublic())
	for _, tt := range []struct {
		name   string
		mutate func(*keyFile)
		want   string
	}{
		{"another key's public_key", func(f *keyFile) { f.PublicKey = otherPub }, "public_key"},
		{"another key's peer_id", func(f *keyFile) { f.PeerID = other.PeerID.String() }, "peer_id"},
		{"another key's address", func(f *keyFile) { f.Address = other.Address.String() }, "address"},
		{"a public half that is not the seed's, with no address to catch it", func(f *keyFile) {
			f.Address, f.PeerID, f.PublicKey = "", "", ""
			f.PrivateKey = f.PrivateKey[:64] + otherPub[len(otherPub)-64:]
		}, "public half"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := kf
			tt.mutate(&f)
			out, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "key.json")
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKey(path); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadKey = %v, want ErrBadKey naming %q", err, tt.want)
			}
		})
	}
}
