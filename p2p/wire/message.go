package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

// SigningDomain opens every signing string, so an envelope signature can
// never be mistaken for a signature over anything else the key signs.
const SigningDomain = "rainp2p/envelope/v1"

// IDLen is the length of a MessageID.
const IDLen = sha256.Size

// Sentinel errors of signing and verification.
var (
	ErrUnsigned     = errors.New("envelope is not signed")
	ErrBadOrigin    = errors.New("envelope origin is not a usable public key")
	ErrBadSignature = errors.New("envelope signature does not verify")
	ErrNoCreatedAt  = errors.New("envelope has no creation time")
	ErrMisdirected  = errors.New("envelope recipient does not fit")
)

// MessageID identifies an envelope: SHA-256 over its signing string (see
// SigningBytes and docs/PROTOCOL.md). It covers everything the originator
// signs, so a forgery that reuses a nonce with other content has another
// ID, and it is what nodes deduplicate on, after verifying the signature.
type MessageID [IDLen]byte

// String returns the ID as lower-case hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id MessageID) IsZero() bool { return id == MessageID{} }

// ParseMessageID reads a 32-byte ID from b.
func ParseMessageID(b []byte) (MessageID, error) {
	var id MessageID
	if len(b) != IDLen {
		return id, fmt.Errorf("%w: message ID of %d bytes, want %d", ErrMalformed, len(b), IDLen)
	}
	copy(id[:], b)
	return id, nil
}

// Message is an envelope decoded and verified once, at the router edge,
// and passed along as is: routers forward Raw unchanged and the Module
// deduplicates on ID.
type Message struct {
	Envelope *Envelope
	// Raw is the serialized envelope. Envelope's byte fields alias it.
	Raw []byte
	// ID is the message ID; Origin the address of the signing key.
	ID        MessageID
	Origin    identity.Address
	CreatedAt time.Time
	// Recipient is the only node that may accept a unicast; zero for a
	// broadcast.
	Recipient identity.Address
}

// IsUnicast reports whether the envelope is addressed to one node.
func (m *Message) IsUnicast() bool { return !m.Recipient.IsZero() }

// Signer returns the peer ID of the key that signed the envelope.
func (m *Message) Signer() (peer.ID, error) {
	pub, err := crypto.UnmarshalPublicKey(m.Envelope.GetOrigin())
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOrigin, err)
	}
	return identity.PeerIDFromPublicKey(pub)
}

// SigningBytes returns the byte string an envelope's signature is about
// (docs/PROTOCOL.md): the domain tag, the network ID, the content's type
// URL and value, the nonce, the creation time, the origin and the
// recipient. Integers are 8 bytes big-endian; every variable-length field
// is preceded by its length as such an integer. Signers hash it
// (MessageIDOf) rather than materialise it.
func SigningBytes(networkID string, e *Envelope) []byte {
	var b bytes.Buffer
	writeSigning(&b, networkID, e)
	return b.Bytes()
}

// ComputeID is SHA-256 over SigningBytes: the message ID, and what the
// originator signs. It does not verify anything.
func ComputeID(networkID string, e *Envelope) MessageID {
	h := sha256.New()
	writeSigning(h, networkID, e)
	var id MessageID
	h.Sum(id[:0])
	return id
}

// GossipID is the background topic's message ID for e: SHA-256 over the
// message ID and the signature. A copy with another signature, valid or
// not, is another gossip message, so an invalid copy can never make
// gossipsub (its seen cache, IDONTWANT) suppress the genuine one. Nodes
// still deduplicate deliveries on the message ID.
func GossipID(networkID string, e *Envelope) [sha256.Size]byte {
	id := ComputeID(networkID, e)
	return gossipIDOf(id, e.GetSignature())
}

func gossipIDOf(id MessageID, sig []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(id[:])
	h.Write(sig)
	var g [sha256.Size]byte
	h.Sum(g[:0])
	return g
}

func writeSigning(w io.Writer, networkID string, e *Envelope) {
	f := signingWriter{w: w}
	f.field([]byte(SigningDomain))
	f.field([]byte(networkID))
	f.field([]byte(e.GetContent().GetTypeUrl()))
	f.field(e.GetContent().GetValue())
	f.u64(e.GetNonce())
	f.u64(uint64(e.GetCreatedAt()))
	f.field(e.GetOrigin())
	f.field(e.GetRecipient())
}

// signingWriter writes signing strings: integers as 8 bytes big-endian,
// each variable-length field preceded by its length as such an integer.
type signingWriter struct {
	w io.Writer
	n [8]byte
}

func (s *signingWriter) u64(v uint64) {
	binary.BigEndian.PutUint64(s.n[:], v)
	s.w.Write(s.n[:])
}

func (s *signingWriter) field(b []byte) {
	s.u64(uint64(len(b)))
	s.w.Write(b)
}

// Sign makes key the originator of e: it sets the origin, the recipient
// (the zero address for a broadcast), the creation time (now, in
// milliseconds) and the signature. Any libp2p key type signs; validators
// use ed25519.
func Sign(networkID string, e *Envelope, key crypto.PrivKey, to identity.Address, now time.Time) error {
	if err := e.Check(); err != nil {
		return err
	}
	if key == nil {
		return fmt.Errorf("signing envelope: %w: no key", identity.ErrBadKey)
	}
	origin, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return fmt.Errorf("signing envelope: %w: %v", identity.ErrBadKey, err)
	}
	e.Origin, e.Recipient, e.CreatedAt, e.Signature = origin, nil, now.UnixMilli(), nil
	if !to.IsZero() {
		e.Recipient = bytes.Clone(to[:])
	}
	id := ComputeID(networkID, e)
	sig, err := key.Sign(id[:])
	if err != nil {
		return fmt.Errorf("signing envelope: %w", err)
	}
	e.Signature = sig
	return nil
}

// Seal signs e as key's, for the node to (the zero address for a
// broadcast; see Sign), encodes it, refusing results over max bytes (max
// <= 0 means DefaultMaxMessageSize), and returns it opened. An envelope
// that is already signed is verified and kept as it is, so a node can pass
// on a message it received; it must then be addressed to to.
func Seal(networkID string, e *Envelope, key crypto.PrivKey, to identity.Address, now time.Time, max int) (*Message, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	if len(e.GetSignature()) == 0 {
		if err := Sign(networkID, e, key, to, now); err != nil {
			return nil, err
		}
	}
	raw, err := EncodeEnvelope(e, max)
	if err != nil {
		return nil, err
	}
	m, err := Open(networkID, raw, max)
	if err != nil {
		return nil, err
	}
	if m.Recipient != to {
		return nil, fmt.Errorf("%w: envelope for %s, sending to %s", ErrMisdirected, m.Recipient, to)
	}
	return m, nil
}

// Verify checks e's origin and signature under networkID and returns its
// message ID, originator and recipient.
func Verify(networkID string, e *Envelope) (MessageID, identity.Address, identity.Address, error) {
	var none identity.Address
	if len(e.GetSignature()) == 0 && len(e.GetOrigin()) == 0 {
		return MessageID{}, none, none, ErrUnsigned
	}
	if e.GetCreatedAt() <= 0 {
		return MessageID{}, none, none, ErrNoCreatedAt
	}
	var to identity.Address
	switch len(e.GetRecipient()) {
	case 0:
	case identity.AddressLen:
		copy(to[:], e.GetRecipient())
		if to.IsZero() {
			return MessageID{}, none, none, fmt.Errorf("%w: zero recipient", ErrMalformed)
		}
	default:
		return MessageID{}, none, none, fmt.Errorf("%w: recipient of %d bytes", ErrMalformed, len(e.GetRecipient()))
	}
	pub, err := crypto.UnmarshalPublicKey(e.GetOrigin())
	if err != nil {
		return MessageID{}, none, none, fmt.Errorf("%w: %v", ErrBadOrigin, err)
	}
	id := ComputeID(networkID, e)
	if ok, err := pub.Verify(id[:], e.GetSignature()); err != nil || !ok {
		return MessageID{}, none, none, ErrBadSignature
	}
	addr, err := identity.AddressFromPublicKey(pub)
	if err != nil {
		return MessageID{}, none, none, fmt.Errorf("%w: %v", ErrBadOrigin, err)
	}
	return id, addr, to, nil
}

// Open decodes a serialized envelope of at most max bytes (max <= 0 means
// DefaultMaxMessageSize), checks it and verifies its signature. The
// returned Message aliases raw; the caller must not reuse raw afterwards.
func Open(networkID string, raw []byte, max int) (*Message, error) {
	e, err := DecodeEnvelope(raw, max)
	if err != nil {
		return nil, err
	}
	id, origin, to, err := Verify(networkID, e)
	if err != nil {
		return nil, err
	}
	return &Message{Envelope: e, Raw: raw, ID: id, Origin: origin, CreatedAt: time.UnixMilli(e.GetCreatedAt()), Recipient: to}, nil
}

// IsInvalid reports whether err condemns the message itself (malformed,
// unsigned, badly signed, misdirected), as opposed to a limit of the
// receiver. Routers hold such messages against the peer that sent them.
func IsInvalid(err error) bool {
	for _, e := range []error{ErrMalformed, ErrEmpty, ErrNoContent, ErrZeroNonce, ErrUnsigned, ErrBadOrigin, ErrBadSignature, ErrNoCreatedAt, ErrMisdirected} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
