package wire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MaxParts is the most ring parts a submission may carry; a frame with
// more is malformed. A full node hands its broadcast to at most nine heads
// (two RainTree levels), and its parent takes the parts of the heads it
// could not reach. Twelve parts and a set hash fit in FrameOverhead.
const MaxParts = 12

// maxSetHash bounds a submission's set hash; set hashes are 32 bytes.
const maxSetHash = 64

// Part is a run of the sorted validator ring: Len validators from index
// Start, wrapping round.
type Part struct {
	Start, Len int
}

// Handover is what a submission frame adds to its envelope when a full
// node hands its broadcast over in parts: the validator set's hash and the
// parts the receiver starts. The zero Handover is a submission of the
// whole ring.
type Handover struct {
	SetHash []byte
	Parts   []Part
}

// EncodeSubmission frames an encoded envelope for background unicast with
// the parts of the ring its receiver is to start.
func EncodeSubmission(envelope []byte, h Handover) ([]byte, error) {
	if len(envelope) == 0 {
		return nil, ErrEmpty
	}
	if len(h.Parts) > MaxParts || len(h.SetHash) > maxSetHash {
		return nil, fmt.Errorf("%w: submission of %d parts, set hash of %d bytes", ErrMalformed, len(h.Parts), len(h.SetHash))
	}
	m := &BackgroundMessage{Data: envelope, SetHash: h.SetHash}
	for _, p := range h.Parts {
		if p.Start < 0 || p.Len < 1 || uint64(p.Start) > 1<<32-1 || uint64(p.Len) > 1<<32-1 {
			return nil, fmt.Errorf("%w: ring part %+v", ErrMalformed, p)
		}
		m.Parts = append(m.Parts, &RingPart{Start: uint32(p.Start), Len: uint32(p.Len)})
	}
	return proto.Marshal(m)
}

// OpenSubmission is OpenBackground for a submission: it also returns the
// parts the frame hands over.
func OpenSubmission(networkID string, b []byte, max int) (*Message, Handover, error) {
	data, h, err := parseBackground(b, max)
	if err != nil {
		return nil, Handover{}, err
	}
	m, err := Open(networkID, data, max)
	if err != nil {
		return nil, Handover{}, err
	}
	return m, h, nil
}

// parseBackground splits a background frame into the envelope (aliasing
// b) and a submission's handover.
func parseBackground(b []byte, max int) ([]byte, Handover, error) {
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	if err := checkSize(len(b), max+FrameOverhead); err != nil {
		return nil, Handover{}, err
	}
	var data []byte
	var h Handover
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num < 1 || num > 3 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: background message: field %d has wire type %d", ErrMalformed, num, typ)
		}
		switch num {
		case 1:
			data = v
		case 2:
			if len(v) > maxSetHash {
				return fmt.Errorf("%w: background message: set hash of %d bytes", ErrMalformed, len(v))
			}
			h.SetHash = v
		case 3:
			if len(h.Parts) == MaxParts {
				return fmt.Errorf("%w: background message: more than %d ring parts", ErrMalformed, MaxParts)
			}
			p, err := parsePart(v)
			if err != nil {
				return err
			}
			h.Parts = append(h.Parts, p)
		}
		return nil
	})
	if err != nil {
		return nil, Handover{}, fmt.Errorf("background message: %w", err)
	}
	return data, h, nil
}

// parsePart decodes a RingPart; a part must hold at least one validator.
func parsePart(b []byte) (Part, error) {
	var p Part
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
		if num != 1 && num != 2 {
			return nil
		}
		if typ != protowire.VarintType || x > 1<<32-1 {
			return fmt.Errorf("%w: ring part: field %d", ErrMalformed, num)
		}
		if num == 1 {
			p.Start = int(x)
		} else {
			p.Len = int(x)
		}
		return nil
	})
	if err == nil && p.Len < 1 {
		err = fmt.Errorf("%w: empty ring part", ErrMalformed)
	}
	return p, err
}
