package wire

import (
	"fmt"
	"time"

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
	// WantProof asks the validator of a whole-ring submission for its
	// proof that it started the message (EncodeProof).
	WantProof bool
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
	m := &BackgroundMessage{Data: envelope, SetHash: h.SetHash, WantProof: h.WantProof}
	for _, p := range h.Parts {
		if p.Start < 0 || p.Len < 1 || uint64(p.Start) > 1<<32-1 || uint64(p.Len) > 1<<32-1 {
			return nil, fmt.Errorf("%w: ring part %+v", ErrMalformed, p)
		}
		m.Parts = append(m.Parts, &RingPart{Start: uint32(p.Start), Len: uint32(p.Len)})
	}
	return proto.Marshal(m)
}

// OpenSubmission is OpenBackground for a submission: it also returns the
// parts the frame hands over. A proof (EncodeProof) or a busy notice
// (EncodeBusy) is ErrEmpty here.
func OpenSubmission(networkID string, b []byte, max int) (*Message, Handover, error) {
	u, err := OpenUnicast(networkID, b, max)
	switch {
	case err == nil && u.Message == nil:
		err = fmt.Errorf("%w: a proof or a busy notice, not a submission", ErrEmpty)
	case err == nil && u.Repair:
		err = fmt.Errorf("%w: a repair, not a submission", ErrMalformed)
	}
	return u.Message, u.Handover, err
}

// Unicast is an opened frame of the background router's unicast protocol:
// exactly one of a message (with its handover), a parent's proof, or a
// busy notice.
type Unicast struct {
	Message  *Message
	Handover Handover
	Proof    *Proof
	// Busy is how long the sender asks its large gossip writes to be held
	// (EncodeBusy); zero unless the frame is a busy notice.
	Busy time.Duration
	// AskToSend: the sender has a large gossip write for the receiver and
	// asks whether to send it now (EncodeAskToSend).
	AskToSend bool
	// ClearToSend: the answer to an ask that the write may go now
	// (EncodeClearToSend).
	ClearToSend bool
	// Repair: Message is a full node's copy of a broadcast for a
	// validator it should have reached by now (EncodeRepair), to deliver,
	// not to start.
	Repair bool
}

// OpenUnicast opens a frame of the background router's unicast protocol:
// a submission or direct message, whose message and handover it returns,
// or a parent's proof (EncodeProof) or a busy notice (EncodeBusy), each
// returned alone. A frame with more than one of them is malformed.
func OpenUnicast(networkID string, b []byte, max int) (Unicast, error) {
	f, err := parseBackground(b, max, true)
	switch {
	case err != nil:
		return Unicast{}, err
	case f.controls() > 0 && (len(f.data) > 0 || len(f.handover.Parts) > 0 || len(f.handover.SetHash) > 0 || f.handover.WantProof || f.repair):
		return Unicast{}, fmt.Errorf("%w: background message: a proof, notice, ask or answer with a message", ErrMalformed)
	case f.repair && (len(f.handover.Parts) > 0 || len(f.handover.SetHash) > 0 || f.handover.WantProof):
		return Unicast{}, fmt.Errorf("%w: background message: a repair with a handover", ErrMalformed)
	case f.controls() > 1:
		return Unicast{}, fmt.Errorf("%w: background message: more than one of a proof, notice, ask and answer", ErrMalformed)
	case f.proof != nil:
		return Unicast{Proof: f.proof}, nil
	case f.busy > 0:
		return Unicast{Busy: time.Duration(f.busy) * time.Millisecond}, nil
	case f.ask || f.clear:
		return Unicast{AskToSend: f.ask, ClearToSend: f.clear}, nil
	}
	m, err := Open(networkID, f.data, max)
	if err != nil {
		return Unicast{}, err
	}
	if f.repair && m.IsUnicast() {
		return Unicast{}, fmt.Errorf("%w: background message: a repair of a direct message", ErrMalformed)
	}
	return Unicast{Message: m, Handover: f.handover, Repair: f.repair}, nil
}

// CarriesEnvelope reports whether b, a background frame, carries an
// envelope (a payload copy) rather than a proof, a busy notice, an ask
// to send or its answer alone,
// reading only its fields: neither the envelope nor its signature is
// opened.
func CarriesEnvelope(b []byte) (bool, error) {
	envelope := false
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		envelope = envelope || num == 1 && typ == protowire.BytesType && len(v) > 0
		return nil
	})
	return envelope, err
}

// EncodeBusy frames a busy notice for background unicast: the sender is
// receiving a large frame and asks its peer to hold its large gossip
// writes to the sender for d, to the millisecond (at least one).
func EncodeBusy(d time.Duration) ([]byte, error) {
	ms := d.Milliseconds()
	if ms < 1 || ms > 1<<32-1 {
		return nil, fmt.Errorf("%w: busy notice of %v", ErrMalformed, d)
	}
	return proto.Marshal(&BackgroundMessage{BusyMs: uint32(ms)})
}

// EncodeAskToSend frames an ask for background unicast: the sender has a
// large gossip write for its peer and asks whether to send it now.
func EncodeAskToSend() []byte {
	b, _ := proto.Marshal(&BackgroundMessage{AskToSend: true}) // cannot fail
	return b
}

// EncodeClearToSend frames the answer to an ask that the write may go
// now; a peer that may not send yet is sent a busy notice instead.
func EncodeClearToSend() []byte {
	b, _ := proto.Marshal(&BackgroundMessage{ClearToSend: true}) // cannot fail
	return b
}

// EncodeRepair frames an encoded broadcast envelope for background
// unicast as a repair: a copy for a validator that RainTree should have
// reached by now, to deliver and publish on gossip, not to start.
func EncodeRepair(envelope []byte) ([]byte, error) {
	if len(envelope) == 0 {
		return nil, ErrEmpty
	}
	return proto.Marshal(&BackgroundMessage{Data: envelope, Repair: true})
}

// backgroundFrame is a parsed background frame: the envelope (aliasing
// the frame), a submission's handover, or a proof.
type backgroundFrame struct {
	data     []byte
	handover Handover
	proof    *Proof
	busy     uint32 // milliseconds
	ask      bool
	clear    bool
	repair   bool
}

// controls counts the frame's unicast controls: a proof, a busy notice,
// an ask to send and its answer. A frame holds at most one, alone.
func (f backgroundFrame) controls() int {
	n := 0
	for _, on := range []bool{f.proof != nil, f.busy > 0, f.ask, f.clear} {
		if on {
			n++
		}
	}
	return n
}

// parseBackground splits a background frame into its fields. Only a
// frame of the unicast protocol may hold a proof or ask for one, a busy
// notice, an ask to send or its answer, or mark a repair; on gossip those fields are
// skipped unread, as older nodes skip them, so a frame they would
// forward is never one this node rejects.
func parseBackground(b []byte, max int, unicast bool) (backgroundFrame, error) {
	var f backgroundFrame
	if max <= 0 {
		max = DefaultMaxMessageSize
	}
	if err := checkSize(len(b), max+FrameOverhead); err != nil {
		return f, err
	}
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case !unicast && num >= 4 && num <= 9:
			return nil
		case num >= 5 && num <= 9 && typ != protowire.VarintType:
			return fmt.Errorf("%w: background message: field %d has wire type %d", ErrMalformed, num, typ)
		case num == 9:
			f.repair = x != 0
			return nil
		case num == 5:
			f.handover.WantProof = x != 0
			return nil
		case num == 7:
			f.ask = x != 0
			return nil
		case num == 8:
			f.clear = x != 0
			return nil
		case num == 6 && x > 1<<32-1:
			return fmt.Errorf("%w: background message: busy for %d ms", ErrMalformed, x)
		case num == 6:
			f.busy = uint32(x)
			return nil
		case num < 1 || num > 4:
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: background message: field %d has wire type %d", ErrMalformed, num, typ)
		}
		switch num {
		case 1:
			f.data = v
		case 2:
			if len(v) > maxSetHash {
				return fmt.Errorf("%w: background message: set hash of %d bytes", ErrMalformed, len(v))
			}
			f.handover.SetHash = v
		case 3:
			if len(f.handover.Parts) == MaxParts {
				return fmt.Errorf("%w: background message: more than %d ring parts", ErrMalformed, MaxParts)
			}
			p, err := parsePart(v)
			if err != nil {
				return err
			}
			f.handover.Parts = append(f.handover.Parts, p)
		case 4:
			if f.proof != nil {
				return fmt.Errorf("%w: background message: two proofs", ErrMalformed)
			}
			p, err := parseProof(v)
			if err != nil {
				return err
			}
			f.proof = &p
		}
		return nil
	})
	if err != nil {
		return backgroundFrame{}, fmt.Errorf("background message: %w", err)
	}
	return f, nil
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

// MinProofSpan is the fewest validators the frame a proof names must
// hold, in a set of n: ⌊(n−1)/3⌋ less ProofSpanSlack, at least 2. A
// RainTree root sends one frame of each of the two thirds of the ring it
// does not keep, each of about (n−1)/3 validators, so a parent proves
// that it sent one of those, not merely a frame near its leaves; the
// slack leaves room for a head that is down or lagging, whose frame goes
// to the next validator one shorter. 0 when n is below 5: no root of so
// few sends a frame of two.
func MinProofSpan(n int) int {
	if n < 5 {
		return 0
	}
	return max(2, (n-1)/3-ProofSpanSlack)
}

// ProofSpanSlack is how many validators a root's top frame may lose to
// re-delegations and still prove a block (MinProofSpan): RainTree's
// default MaxRetries.
const ProofSpanSlack = 3

// maxProofSig bounds a proof's signature; ed25519 signatures are 64 bytes.
const maxProofSig = 128

// Proof is a parent validator's proof that it started a full node's
// whole-ring submission on RainTree: the receipt one of its targets signed
// for the frame of it that target received (docs/PROTOCOL.md section 5).
type Proof struct {
	Receipt Receipt
	Sig     []byte
	// SetHash names the validator set whose ring the receipt's span
	// indexes, as RainTree frames name it.
	SetHash []byte
}

// EncodeProof frames p for background unicast.
func EncodeProof(p Proof) ([]byte, error) {
	if len(p.Sig) == 0 || len(p.Sig) > maxProofSig || len(p.SetHash) > maxSetHash {
		return nil, fmt.Errorf("%w: proof signature of %d bytes, set hash of %d", ErrMalformed, len(p.Sig), len(p.SetHash))
	}
	return proto.Marshal(&BackgroundMessage{Proof: &SubmissionProof{
		MessageId:        p.Receipt.ID[:],
		Receipt:          p.Sig,
		ReceiptSpanStart: p.Receipt.SpanStart,
		ReceiptSpanLen:   p.Receipt.SpanLen,
		ReceiptLevel:     p.Receipt.Level,
		SetHash:          p.SetHash,
	}})
}

// parseProof decodes a SubmissionProof; it needs a message ID and a
// signature of at most maxProofSig bytes.
func parseProof(b []byte) (Proof, error) {
	var p Proof
	var id []byte
	err := parseFields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num < 1 || num > 6:
			return nil
		case (num <= 2 || num == 6) && typ != protowire.BytesType, num > 2 && num < 6 && (typ != protowire.VarintType || x > 1<<32-1):
			return fmt.Errorf("%w: proof: field %d", ErrMalformed, num)
		}
		switch num {
		case 6:
			if len(v) > maxSetHash {
				return fmt.Errorf("%w: proof: set hash of %d bytes", ErrMalformed, len(v))
			}
			p.SetHash = v
		case 1:
			id = v
		case 2:
			p.Sig = v
		case 3:
			p.Receipt.SpanStart = uint32(x)
		case 4:
			p.Receipt.SpanLen = uint32(x)
		case 5:
			p.Receipt.Level = uint32(x)
		}
		return nil
	})
	if err != nil {
		return Proof{}, err
	}
	if p.Receipt.ID, err = ParseMessageID(id); err != nil {
		return Proof{}, fmt.Errorf("proof: %w", err)
	}
	if len(p.Sig) == 0 || len(p.Sig) > maxProofSig {
		return Proof{}, fmt.Errorf("%w: proof signature of %d bytes", ErrMalformed, len(p.Sig))
	}
	return p, nil
}
