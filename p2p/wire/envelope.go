package wire

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultMaxMessageSize is the largest serialized envelope accepted by
// default: 4 MiB, the size of a full block.
const DefaultMaxMessageSize = 4 << 20

// Sentinel errors callers branch on.
var (
	ErrEmpty     = errors.New("empty message")
	ErrTooLarge  = errors.New("message too large")
	ErrMalformed = errors.New("malformed message")
	ErrNoContent = errors.New("envelope has no content")
	ErrZeroNonce = errors.New("envelope nonce is zero")
)

// NewNonce returns a non-zero nonce from a cryptographically random source.
func NewNonce() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("reading random nonce: %w", err)
		}
		if n := binary.LittleEndian.Uint64(b[:]); n != 0 {
			return n, nil
		}
	}
}

// NewEnvelope wraps content in an Envelope with a fresh random nonce.
func NewEnvelope(content proto.Message) (*Envelope, error) {
	if content == nil {
		return nil, ErrNoContent
	}
	a, err := anypb.New(content)
	if err != nil {
		return nil, fmt.Errorf("wrapping content: %w", err)
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, err
	}
	return &Envelope{Content: a, Nonce: nonce}, nil
}

// Check reports why e cannot be sent or delivered, or nil.
func (e *Envelope) Check() error {
	switch {
	case e == nil || e.GetContent() == nil:
		return ErrNoContent
	case e.GetNonce() == 0:
		return ErrZeroNonce
	}
	return nil
}

// EncodeEnvelope checks e and serializes it, refusing results over max bytes
// (max <= 0 means DefaultMaxMessageSize).
func EncodeEnvelope(e *Envelope, max int) ([]byte, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encoding envelope: %w", err)
	}
	if err := checkSize(len(b), max); err != nil {
		return nil, err
	}
	return b, nil
}

// DecodeEnvelope parses and checks a serialized envelope of at most max bytes
// (max <= 0 means DefaultMaxMessageSize).
func DecodeEnvelope(b []byte, max int) (*Envelope, error) {
	if err := checkSize(len(b), max); err != nil {
		return nil, err
	}
	e := &Envelope{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrMalformed, err)
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	return e, nil
}

// EncodeBackground frames an encoded envelope for the background router.
func EncodeBackground(envelope []byte) ([]byte, error) {
	if len(envelope) == 0 {
		return nil, ErrEmpty
	}
	return proto.Marshal(&BackgroundMessage{Data: envelope})
}

// DecodeBackground parses a background frame of at most max bytes and checks
// the envelope inside it. It returns the envelope and its encoding.
func DecodeBackground(b []byte, max int) (*Envelope, []byte, error) {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	if err := checkSize(len(b), max+FrameOverhead); err != nil {
		return nil, nil, err
	}
	m := &BackgroundMessage{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, nil, fmt.Errorf("%w: background message: %v", ErrMalformed, err)
	}
	e, err := DecodeEnvelope(m.GetData(), max)
	if err != nil {
		return nil, nil, err
	}
	return e, m.GetData(), nil
}

// FrameOverhead is the number of bytes a router frame may add around an
// envelope; transports size their limits as max envelope + FrameOverhead.
const FrameOverhead = 256

func checkSize(n, max int) error {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	if n == 0 {
		return ErrEmpty
	}
	if n > max {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max)
	}
	return nil
}
