package validators

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

func keys(t *testing.T, n int) []*identity.Key {
	t.Helper()
	ks := make([]*identity.Key, n)
	for i := range ks {
		k, err := identity.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		ks[i] = k
	}
	return ks
}

func TestNewSetSortsByAddressAndIndexes(t *testing.T) {
	ks := keys(t, 7)
	var vs []Validator
	for _, k := range ks {
		vs = append(vs, Validator{PublicKey: k.Private.GetPublic()})
	}
	s, err := NewSet(3, vs)
	if err != nil {
		t.Fatal(err)
	}
	var hexes []string
	for _, v := range s.Validators() {
		hexes = append(hexes, v.Address.String())
	}
	if !slices.IsSorted(hexes) {
		t.Fatalf("not sorted: %v", hexes)
	}
	for _, k := range ks {
		i, ok := s.IndexOf(k.Address)
		j, ok2 := s.IndexOfPeer(k.PeerID)
		if !ok || !ok2 || i != j || s.At(i).Address != k.Address {
			t.Fatalf("index of %s: %d %v %d %v", k.Address, i, ok, j, ok2)
		}
	}
	other, _ := NewSet(4, vs)
	if bytes.Equal(s.Hash(), other.Hash()) {
		t.Fatal("sets at different heights share a hash")
	}
}

func TestNewSetRejectsBadMembers(t *testing.T) {
	ks := keys(t, 2)
	tests := []struct {
		name string
		vs   []Validator
	}{
		{"a missing public key", []Validator{{Address: ks[0].Address}}},
		{"an address that does not match the key", []Validator{{Address: ks[1].Address, PublicKey: ks[0].Private.GetPublic()}}},
		{"a key that is not ed25519", []Validator{{PublicKey: secp256k1Key(t)}}},
		{"a validator listed twice", []Validator{{PublicKey: ks[0].Private.GetPublic()}, {PublicKey: ks[0].Private.GetPublic()}}},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			if _, err := NewSet(0, tt.vs); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestGenesisRoundTrip(t *testing.T) {
	ks := keys(t, 3)
	g := &Genesis{NetworkID: "test"}
	for _, k := range ks {
		m, err := Member(k.Private.GetPublic(), nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Multiaddrs = []string{"/ip4/127.0.0.1/tcp/4001"}
		g.Validators = append(g.Validators, m)
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	_, s, err := LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || len(s.At(0).Multiaddrs) != 1 {
		t.Fatalf("loaded %d validators", s.Len())
	}
}

func TestGenesisRejectsBadInput(t *testing.T) {
	ks := keys(t, 1)
	m, _ := Member(ks[0].Private.GetPublic(), nil)
	tests := []struct {
		name string
		g    Genesis
		want string
	}{
		{"no network id", Genesis{Validators: []GenesisMember{m}}, "network_id"},
		{"a bad public key", Genesis{NetworkID: "n", Validators: []GenesisMember{{PublicKey: "zz"}}}, "validator #1"},
		{"a bad multiaddr", Genesis{NetworkID: "n", Validators: []GenesisMember{{PublicKey: m.PublicKey, Multiaddrs: []string{"nope"}}}}, "multiaddr"},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			_, err := tt.g.Set()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func secp256k1Key(t *testing.T) crypto.PubKey {
	t.Helper()
	priv, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv.GetPublic()
}
