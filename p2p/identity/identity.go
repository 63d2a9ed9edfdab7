package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// AddressLen is the length of an Address in bytes.
const AddressLen = 20

// Sentinel errors callers branch on.
var (
	ErrBadAddress = errors.New("invalid address")
	ErrBadKey     = errors.New("invalid key")
)

// Address identifies a node in 20 bytes, derived from its public key (see
// AddressFromPublicKey). It is comparable and usable as a map key.
type Address [AddressLen]byte

// String returns the address as lower-case hex.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// IsZero reports whether a is the zero address.
func (a Address) IsZero() bool { return a == Address{} }

// MarshalText encodes the address as hex.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes a hex address.
func (a *Address) UnmarshalText(b []byte) error {
	v, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAddress decodes a 40-character hex address (an optional 0x prefix is
// accepted).
func ParseAddress(s string) (Address, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "0x")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != AddressLen {
		return Address{}, fmt.Errorf("%w: %q: want %d hex-encoded bytes", ErrBadAddress, s, AddressLen)
	}
	var a Address
	copy(a[:], b)
	return a, nil
}

// AddressFromPublicKey derives the address of a public key: the first 20
// bytes of a SHA-256 digest.
//
//   - ed25519 (every validator, and every key rainp2p generates): the digest
//     of the 32-byte raw public key.
//   - any other libp2p key type (secp256k1, ECDSA, RSA; full nodes of other
//     implementations): the digest of the key's libp2p protobuf encoding
//     (crypto.MarshalPublicKey), which names the key type. That encoding is
//     never 32 bytes long, so it cannot collide with a raw ed25519 key.
//
// A node therefore never has the zero address; a key that cannot be encoded
// is an ErrBadKey.
func AddressFromPublicKey(pub crypto.PubKey) (Address, error) {
	if pub == nil {
		return Address{}, fmt.Errorf("%w: no public key", ErrBadKey)
	}
	var (
		in  []byte
		err error
	)
	if pub.Type() == crypto.Ed25519 {
		in, err = pub.Raw()
	} else {
		in, err = crypto.MarshalPublicKey(pub)
	}
	if err != nil {
		return Address{}, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	sum := sha256.Sum256(in)
	var a Address
	copy(a[:], sum[:AddressLen])
	return a, nil
}

// AddressFromPeerID derives the address of a peer whose ID embeds its public
// key (ed25519 and secp256k1 IDs do). RSA and ECDSA IDs are hashes: for
// those, take the key from the peerstore (which holds the key of every peer
// that completed a handshake) and use AddressFromPublicKey.
func AddressFromPeerID(id peer.ID) (Address, error) {
	pub, err := id.ExtractPublicKey()
	if err != nil {
		return Address{}, fmt.Errorf("%w: peer %s: %v", ErrBadKey, id, err)
	}
	return AddressFromPublicKey(pub)
}

// PeerIDFromPublicKey returns the libp2p peer ID of a public key. An address
// alone cannot be turned back into a peer ID (it is a hash); callers look the
// public key up in the validator set or the address book first.
func PeerIDFromPublicKey(pub crypto.PubKey) (peer.ID, error) {
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return id, nil
}

// ParsePublicKey decodes a hex-encoded raw ed25519 public key.
func ParsePublicKey(s string) (crypto.PubKey, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not hex: %v", ErrBadKey, err)
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pub, nil
}

// PublicKeyHex encodes a raw public key as hex.
func PublicKeyHex(pub crypto.PubKey) string {
	raw, _ := pub.Raw()
	return hex.EncodeToString(raw)
}

// Key is a node's private key with the identities derived from it.
type Key struct {
	Private crypto.PrivKey
	Address Address
	PeerID  peer.ID
}

// GenerateKey creates a fresh ed25519 key.
func GenerateKey() (*Key, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	return KeyFromPrivate(priv)
}

// KeyFromPrivate derives the address and peer ID of a private key.
func KeyFromPrivate(priv crypto.PrivKey) (*Key, error) {
	addr, err := AddressFromPublicKey(priv.GetPublic())
	if err != nil {
		return nil, err
	}
	id, err := PeerIDFromPublicKey(priv.GetPublic())
	if err != nil {
		return nil, err
	}
	return &Key{Private: priv, Address: addr, PeerID: id}, nil
}

// keyFile is the on-disk form of a Key. Address, peer ID and public key are
// informative; the private key is authoritative and they are checked on load.
type keyFile struct {
	Address    string `json:"address"`
	PeerID     string `json:"peer_id"`
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// Save writes the key to path with mode 0600, refusing to overwrite an
// existing file so a key is never lost by accident.
func (k *Key) Save(path string) error {
	raw, err := k.Private.Raw()
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	b, err := json.MarshalIndent(keyFile{
		Address:    k.Address.String(),
		PeerID:     k.PeerID.String(),
		PublicKey:  PublicKeyHex(k.Private.GetPublic()),
		PrivateKey: hex.EncodeToString(raw),
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing key file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing key file: %w", err)
	}
	return f.Close()
}

// LoadKey reads a key file written by Save.
func LoadKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("%w: key file %s: %v", ErrBadKey, path, err)
	}
	raw, err := hex.DecodeString(kf.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: key file %s: private key is not hex", ErrBadKey, path)
	}
	priv, err := crypto.UnmarshalEd25519PrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: key file %s: %v", ErrBadKey, path, err)
	}
	// The key is the seed and its public half: a public half that is not
	// the seed's would make the node sign as one key and present another.
	if len(raw) < ed25519.PrivateKeySize || !bytes.Equal(ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]), raw[:ed25519.PrivateKeySize]) {
		return nil, fmt.Errorf("%w: key file %s: the private key's public half is not its seed's", ErrBadKey, path)
	}
	k, err := KeyFromPrivate(priv)
	if err != nil {
		return nil, err
	}
	// Operators copy these from the file, so each must be the key's own.
	for _, f := range []struct{ name, got, want string }{
		{"address", kf.Address, k.Address.String()},
		{"peer_id", kf.PeerID, k.PeerID.String()},
		{"public_key", kf.PublicKey, PublicKeyHex(priv.GetPublic())},
	} {
		if f.got != "" && f.got != f.want {
			return nil, fmt.Errorf("%w: key file %s: %s %s does not match the private key (%s)", ErrBadKey, path, f.name, f.got, f.want)
		}
	}
	return k, nil
}
