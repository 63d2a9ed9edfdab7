package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
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
// (max <= 0 means DefaultMaxMessageSize). It does not verify the signature
// (see Open). The envelope's byte fields alias b.
func DecodeEnvelope(b []byte, max int) (*Envelope, error) {
	if err := checkSize(len(b), max); err != nil {
		return nil, err
	}
	e, err := parseEnvelope(b)
	if err != nil {
		return nil, err
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	return e, nil
}

// EncodeBackground frames an encoded envelope for the background router:
// a submission of the whole ring, which is also the gossip frame.
func EncodeBackground(envelope []byte) ([]byte, error) {
	return EncodeSubmission(envelope, Handover{})
}

// BackgroundEnvelope returns the serialized envelope inside a background
// frame of at most max bytes of envelope (max <= 0 means
// DefaultMaxMessageSize). The result aliases b.
func BackgroundEnvelope(b []byte, max int) ([]byte, error) {
	f, err := parseBackground(b, max, false)
	return f.data, err
}

// DecodeBackground parses a background frame and checks the envelope inside
// it, without verifying its signature. It returns the envelope and its
// encoding, both aliasing b.
func DecodeBackground(b []byte, max int) (*Envelope, []byte, error) {
	data, err := BackgroundEnvelope(b, max)
	if err != nil {
		return nil, nil, err
	}
	e, err := DecodeEnvelope(data, max)
	if err != nil {
		return nil, nil, err
	}
	return e, data, nil
}

// OpenBackground is Open for the envelope inside a background frame.
func OpenBackground(networkID string, b []byte, max int) (*Message, error) {
	data, err := BackgroundEnvelope(b, max)
	if err != nil {
		return nil, err
	}
	return Open(networkID, data, max)
}

// BackgroundMessageID is the gossip message ID of a background frame: the
// GossipID of the envelope inside, computed without verifying the
// signature. For a frame that does not parse it returns a hash of the frame
// under another domain, which can never equal a gossip ID; validation
// rejects such frames.
func BackgroundMessageID(networkID string, b []byte) string {
	data, err := BackgroundEnvelope(b, len(b))
	if err == nil {
		var e *Envelope
		if e, err = parseEnvelope(data); err == nil {
			id := GossipID(networkID, e)
			return string(id[:])
		}
	}
	h := sha256.New()
	h.Write([]byte("rainp2p/invalid-frame/v1"))
	h.Write(b)
	return string(h.Sum(nil))
}

// parseEnvelope decodes an Envelope without copying its byte fields. It is
// stricter than proto.Unmarshal: a known field with the wrong wire type or
// repeated is malformed (no encoder produces either, and accepting them
// would let two parsers disagree on what was signed). Unknown fields are
// skipped, so later versions can add fields.
func parseEnvelope(b []byte) (*Envelope, error) {
	e := &Envelope{}
	var seen uint32
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		want := protowire.BytesType
		if num == 2 || num == 4 {
			want = protowire.VarintType
		}
		if num < 1 || num > 6 {
			return nil
		}
		if typ != want {
			return fmt.Errorf("%w: envelope field %d has wire type %d", ErrMalformed, num, typ)
		}
		if seen&(1<<num) != 0 {
			return fmt.Errorf("%w: envelope field %d repeated", ErrMalformed, num)
		}
		seen |= 1 << num
		switch num {
		case 1:
			a, err := parseAny(v)
			if err != nil {
				return err
			}
			e.Content = a
		case 2:
			e.Nonce = x
		case 3:
			e.Origin = v
		case 4:
			e.CreatedAt = int64(x)
		case 5:
			e.Signature = v
		case 6:
			e.Recipient = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return e, nil
}

func parseAny(b []byte) (*anypb.Any, error) {
	a := &anypb.Any{}
	var seen uint32
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: content field %d has wire type %d", ErrMalformed, num, typ)
		}
		if seen&(1<<num) != 0 {
			return fmt.Errorf("%w: content field %d repeated", ErrMalformed, num)
		}
		seen |= 1 << num
		if num == 1 {
			if !utf8.Valid(v) {
				return fmt.Errorf("%w: content type URL is not UTF-8", ErrMalformed)
			}
			a.TypeUrl = string(v)
		} else {
			a.Value = v
		}
		return nil
	})
	return a, err
}

// parseFields walks the fields of one protobuf message, calling f with
// each field's number, wire type, and value: v for length-delimited fields
// (aliasing b), x for varints. Groups and unknown fixed-width fields are
// skipped.
func parseFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		if !num.IsValid() {
			return fmt.Errorf("%w: field number %d", ErrMalformed, num)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
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
