package validators

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/rainp2p/rainp2p/internal/jsonfile"
	"github.com/rainp2p/rainp2p/p2p/identity"
)

// Sentinel errors callers branch on.
var (
	ErrInvalid    = errors.New("invalid validator set")
	ErrUnknownSet = errors.New("no validator set for that height")
	ErrNotAMember = errors.New("not in the validator set")
)

// Validator is one staked actor.
type Validator struct {
	Address    identity.Address
	PublicKey  crypto.PubKey
	PeerID     peer.ID
	Multiaddrs []ma.Multiaddr
}

// AddrInfo returns the validator's libp2p dialing information.
func (v Validator) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: v.PeerID, Addrs: v.Multiaddrs}
}

// Set is the validator set in force at a height, sorted by address (hex,
// lexicographic, which equals byte order). A Set is never modified after
// NewSet returns it.
type Set struct {
	height     uint64
	validators []Validator
	index      map[identity.Address]int
	byPeer     map[peer.ID]int
	hash       []byte
}

// NewSet validates and sorts vs. Addresses must match public keys and be
// unique.
func NewSet(height uint64, vs []Validator) (*Set, error) {
	s := &Set{
		height:     height,
		validators: slices.Clone(vs),
		index:      make(map[identity.Address]int, len(vs)),
		byPeer:     make(map[peer.ID]int, len(vs)),
	}
	for i := range s.validators {
		v := &s.validators[i]
		if v.PublicKey == nil {
			return nil, fmt.Errorf("%w: validator %s has no public key", ErrInvalid, v.Address)
		}
		if v.PublicKey.Type() != crypto.Ed25519 {
			return nil, fmt.Errorf("%w: validator %s: validators must have ed25519 keys, not %s", ErrInvalid, v.Address, v.PublicKey.Type())
		}
		addr, err := identity.AddressFromPublicKey(v.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: validator %s: %v", ErrInvalid, v.Address, err)
		}
		if !v.Address.IsZero() && v.Address != addr {
			return nil, fmt.Errorf("%w: address %s does not match its public key (%s)", ErrInvalid, v.Address, addr)
		}
		v.Address = addr
		if v.PeerID, err = identity.PeerIDFromPublicKey(v.PublicKey); err != nil {
			return nil, fmt.Errorf("%w: validator %s: %v", ErrInvalid, addr, err)
		}
	}
	slices.SortFunc(s.validators, func(a, b Validator) int { return strings.Compare(a.Address.String(), b.Address.String()) })
	h := sha256.New()
	var hb [8]byte
	binary.BigEndian.PutUint64(hb[:], height)
	h.Write(hb[:])
	for i, v := range s.validators {
		if _, dup := s.index[v.Address]; dup {
			return nil, fmt.Errorf("%w: validator %s listed twice", ErrInvalid, v.Address)
		}
		s.index[v.Address] = i
		s.byPeer[v.PeerID] = i
		h.Write(v.Address[:])
	}
	s.hash = h.Sum(nil)
	return s, nil
}

// Height is the height this set is in force at.
func (s *Set) Height() uint64 { return s.height }

// Len is the number of validators.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.validators)
}

// Hash identifies the set's height and membership (SHA-256).
func (s *Set) Hash() []byte { return slices.Clone(s.hash) }

// At returns the validator at sorted position i.
func (s *Set) At(i int) Validator { return s.validators[i] }

// Validators returns a copy of the sorted validators.
func (s *Set) Validators() []Validator { return slices.Clone(s.validators) }

// IndexOf returns the sorted position of addr.
func (s *Set) IndexOf(addr identity.Address) (int, bool) {
	if s == nil {
		return 0, false
	}
	i, ok := s.index[addr]
	return i, ok
}

// IndexOfPeer returns the sorted position of the validator with peer ID id.
func (s *Set) IndexOfPeer(id peer.ID) (int, bool) {
	if s == nil {
		return 0, false
	}
	i, ok := s.byPeer[id]
	return i, ok
}

// Contains reports whether addr is a validator in s.
func (s *Set) Contains(addr identity.Address) bool {
	_, ok := s.IndexOf(addr)
	return ok
}

// Provider supplies validator sets to the module. An embedding application
// implements it over its own state; the module calls it at start-up and the
// application pushes later changes with Module.UpdateValidators.
type Provider interface {
	// ValidatorSet returns the set in force at height, or ErrUnknownSet.
	ValidatorSet(ctx context.Context, height uint64) (*Set, error)
}

// StaticProvider serves one set for every height (a genesis file).
type StaticProvider struct{ Set *Set }

// ValidatorSet returns the static set.
func (p StaticProvider) ValidatorSet(context.Context, uint64) (*Set, error) {
	if p.Set == nil {
		return nil, ErrUnknownSet
	}
	return p.Set, nil
}

// Genesis is the JSON genesis / validator-set file.
type Genesis struct {
	NetworkID  string          `json:"network_id"`
	Height     uint64          `json:"height"`
	Validators []GenesisMember `json:"validators"`
}

// GenesisMember is one validator as written in a genesis file.
type GenesisMember struct {
	Address    string   `json:"address"`
	PublicKey  string   `json:"public_key"`
	Multiaddrs []string `json:"multiaddrs"`
}

// Member builds a genesis entry for a public key and its listen addresses.
func Member(pub crypto.PubKey, addrs []ma.Multiaddr) (GenesisMember, error) {
	a, err := identity.AddressFromPublicKey(pub)
	if err != nil {
		return GenesisMember{}, err
	}
	m := GenesisMember{Address: a.String(), PublicKey: identity.PublicKeyHex(pub), Multiaddrs: []string{}}
	for _, x := range addrs {
		m.Multiaddrs = append(m.Multiaddrs, x.String())
	}
	return m, nil
}

// Set validates the genesis and returns its validator set.
func (g *Genesis) Set() (*Set, error) {
	if strings.TrimSpace(g.NetworkID) == "" {
		return nil, fmt.Errorf("%w: genesis has no network_id", ErrInvalid)
	}
	vs := make([]Validator, 0, len(g.Validators))
	for i, m := range g.Validators {
		pub, err := identity.ParsePublicKey(m.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: validator #%d: %v", ErrInvalid, i+1, err)
		}
		v := Validator{PublicKey: pub}
		if m.Address != "" {
			if v.Address, err = identity.ParseAddress(m.Address); err != nil {
				return nil, fmt.Errorf("%w: validator #%d: %v", ErrInvalid, i+1, err)
			}
		}
		for _, s := range m.Multiaddrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				return nil, fmt.Errorf("%w: validator #%d: multiaddr %q: %v", ErrInvalid, i+1, s, err)
			}
			v.Multiaddrs = append(v.Multiaddrs, a)
		}
		vs = append(vs, v)
	}
	return NewSet(g.Height, vs)
}

// LoadGenesis reads and validates a genesis file.
func LoadGenesis(path string) (*Genesis, *Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading genesis: %w", err)
	}
	var g Genesis
	if err := jsonfile.Decode(b, &g); err != nil {
		return nil, nil, fmt.Errorf("%w: genesis %s: %v", ErrInvalid, path, err)
	}
	s, err := g.Set()
	if err != nil {
		return nil, nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	return &g, s, nil
}

// Save writes the genesis file as indented JSON.
func (g *Genesis) Save(path string) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
