package wire

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

func TestASubmissionCarriesItsPartsAndTheSameEnvelope(t *testing.T) {
	m := sealed(t, testKey(t), "parts")
	h := Handover{SetHash: bytes.Repeat([]byte{7}, 32), Parts: []Part{{Start: 9, Len: 7}, {Start: 0, Len: 1}}}
	frame, err := EncodeSubmission(m.Raw, h)
	if err != nil {
		t.Fatal(err)
	}
	got, gotH, err := OpenSubmission(testNetwork, frame, 0)
	if err != nil || got.ID != m.ID || !bytes.Equal(gotH.SetHash, h.SetHash) || !slices.Equal(gotH.Parts, h.Parts) {
		t.Fatalf("OpenSubmission = %v, %+v, %v; want %v, %+v", got, gotH, err, m.ID, h)
	}
	// Gossip and whole-ring submissions are the same bytes as before.
	plain, _ := EncodeBackground(m.Raw)
	whole, _ := EncodeSubmission(m.Raw, Handover{})
	if !bytes.Equal(plain, whole) {
		t.Error("a whole-ring submission is not the plain background frame")
	}
	if BackgroundMessageID(testNetwork, frame) != BackgroundMessageID(testNetwork, plain) {
		t.Error("the parts change the gossip message ID")
	}
}

func TestSubmissionsWithBadPartsAreRefused(t *testing.T) {
	m := sealed(t, testKey(t), "parts")
	part := func(fields ...uint64) []byte {
		var b []byte
		for i, x := range fields {
			b = protowire.AppendTag(b, protowire.Number(i+1), protowire.VarintType)
			b = protowire.AppendVarint(b, x)
		}
		return b
	}
	frame := func(parts ...[]byte) []byte {
		b := protowire.AppendTag(nil, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Raw)
		for _, p := range parts {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendBytes(b, p)
		}
		return b
	}
	many := make([][]byte, MaxParts+1)
	for i := range many {
		many[i] = part(uint64(i), 1)
	}
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"an empty part", frame(part(3, 0))},
		{"a part without a length", frame(part(3))},
		{"a start beyond 32 bits", frame(part(1<<32, 1))},
		{"more parts than MaxParts", frame(many...)},
		{"a set hash longer than 64 bytes", append(frame(), append(protowire.AppendTag(nil, 2, protowire.BytesType), protowire.AppendBytes(nil, make([]byte, 65))...)...)},
		{"a set hash of the wrong wire type", append(frame(), protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := OpenSubmission(testNetwork, tt.frame, 0); !errors.Is(err, ErrMalformed) {
				t.Errorf("OpenSubmission = %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := EncodeSubmission(m.Raw, Handover{Parts: make([]Part, MaxParts+1)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeSubmission of too many parts = %v, want ErrMalformed", err)
	}
	if _, err := EncodeSubmission(m.Raw, Handover{Parts: []Part{{Start: 1, Len: 0}}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeSubmission of an empty part = %v, want ErrMalformed", err)
	}
}

// The largest handover fits in the room a frame has around its envelope.
func TestTheLargestHandoverFitsTheFrameOverhead(t *testing.T) {
	env := bytes.Repeat([]byte{1}, DefaultMaxMessageSize)
	parts := make([]Part, MaxParts)
	for i := range parts {
		parts[i] = Part{Start: 1<<32 - 1, Len: 1<<32 - 1}
	}
	frame, err := EncodeSubmission(env, Handover{SetHash: make([]byte, 32), Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	if over := len(frame) - len(env); over > FrameOverhead {
		t.Errorf("a full handover adds %d bytes, FrameOverhead is %d", over, FrameOverhead)
	}
}

// A parent's proof travels alone on background unicast: OpenUnicast
// returns it with no message, and a submission reader refuses it.
func TestAProofFrameCarriesItsReceiptAlone(t *testing.T) {
	m := sealed(t, testKey(t), "a block")
	p := Proof{Receipt: Receipt{ID: m.ID, SpanStart: 3, SpanLen: 4, Level: 2}, Sig: bytes.Repeat([]byte{9}, 64)}
	frame, err := EncodeProof(p)
	if err != nil {
		t.Fatal(err)
	}
	u, err := OpenUnicast(testNetwork, frame, 0)
	if err != nil || u.Message != nil || u.Busy != 0 || u.Proof == nil || u.Proof.Receipt != p.Receipt || !bytes.Equal(u.Proof.Sig, p.Sig) {
		t.Fatalf("OpenUnicast = %+v, %v; want the proof alone", u, err)
	}
	if _, _, err := OpenSubmission(testNetwork, frame, 0); !errors.Is(err, ErrEmpty) {
		t.Errorf("OpenSubmission of a proof = %v, want ErrEmpty", err)
	}
	sub, _ := EncodeSubmission(m.Raw, Handover{WantProof: true})
	if u, err := OpenUnicast(testNetwork, sub, 0); err != nil || u.Message == nil || u.Message.ID != m.ID || u.Proof != nil || !u.Handover.WantProof {
		t.Errorf("OpenUnicast of a submission asking for a proof = %+v, %v", u, err)
	}
}

// A busy notice travels alone on background unicast: OpenUnicast returns
// its duration, to the millisecond, and a submission reader refuses it.
func TestABusyNoticeCarriesItsDurationAlone(t *testing.T) {
	frame, err := EncodeBusy(1500 * time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	u, err := OpenUnicast(testNetwork, frame, 0)
	if err != nil || u.Message != nil || u.Proof != nil || u.Busy != 1500*time.Millisecond {
		t.Fatalf("OpenUnicast = %+v, %v; want a busy notice of 1.5s alone", u, err)
	}
	if _, _, err := OpenSubmission(testNetwork, frame, 0); !errors.Is(err, ErrEmpty) {
		t.Errorf("OpenSubmission of a busy notice = %v, want ErrEmpty", err)
	}
	for _, d := range []time.Duration{0, time.Microsecond, -time.Second, (1 << 32) * time.Millisecond} {
		if _, err := EncodeBusy(d); !errors.Is(err, ErrMalformed) {
			t.Errorf("EncodeBusy(%v) = %v, want ErrMalformed", d, err)
		}
	}
}

// An ask to send and its answer travel alone on background unicast, and
// a submission reader refuses them.
func TestAnAskToSendAndItsAnswerTravelAlone(t *testing.T) {
	for _, tt := range []struct {
		name       string
		frame      []byte
		ask, clear bool
	}{
		{"an ask", EncodeAskToSend(), true, false},
		{"a clearance", EncodeClearToSend(), false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := OpenUnicast(testNetwork, tt.frame, 0)
			if err != nil || u.Message != nil || u.Proof != nil || u.Busy != 0 || u.AskToSend != tt.ask || u.ClearToSend != tt.clear {
				t.Fatalf("OpenUnicast = %+v, %v", u, err)
			}
			if _, _, err := OpenSubmission(testNetwork, tt.frame, 0); !errors.Is(err, ErrEmpty) {
				t.Errorf("OpenSubmission = %v, want ErrEmpty", err)
			}
		})
	}
}

// A repair carries a broadcast alone: it opens with its message, and a
// repair with anything else, of nothing, or of a direct message is
// refused; gossip
// skips the flag unread.
func TestARepairCarriesABroadcastAlone(t *testing.T) {
	m := sealed(t, testKey(t), "a transaction")
	frame, err := EncodeRepair(m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := OpenUnicast(testNetwork, frame, 0)
	if err != nil || !u.Repair || u.Message == nil || u.Message.ID != m.ID || len(u.Handover.Parts) != 0 {
		t.Fatalf("OpenUnicast = %+v, %v", u, err)
	}
	if got, err := OpenBackground(testNetwork, frame, 0); err != nil || got.ID != m.ID {
		t.Fatalf("on gossip the flag is skipped: %v, %v", got, err)
	}
	if _, _, err := OpenSubmission(testNetwork, frame, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("OpenSubmission of a repair = %v, want ErrMalformed", err)
	}
	if _, err := EncodeRepair(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("EncodeRepair(nil) = %v, want ErrEmpty", err)
	}
	sub, err := EncodeSubmission(m.Raw, Handover{Parts: []Part{{Start: 1, Len: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEnvelope(wrapperspb.String("to one"))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := Seal(testNetwork, e, testKey(t), identity.Address{1}, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"a repair with ring parts", append(sub, flagField(9)...)},
		{"a repair asking for a proof", append(slices.Clone(frame), flagField(5)...)},
		{"a repair with an ask", append(slices.Clone(frame), flagField(7)...)},
		{"a repair alone", flagField(9)},
		{"a repair of a direct message", append(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), direct.Raw), flagField(9)...)},
		{"a repair flag of the wrong wire type", append(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), m.Raw), protowire.AppendBytes(protowire.AppendTag(nil, 9, protowire.BytesType), []byte{1})...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := OpenUnicast(testNetwork, tt.frame, 0); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrEmpty) {
				t.Fatalf("OpenUnicast = %+v, %v; want ErrMalformed or ErrEmpty", u, err)
			}
		})
	}
}

// flagField is a bool field num set to true.
func flagField(num protowire.Number) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 1)
}

// busyField is a busy notice's field of ms milliseconds.
func busyField(ms uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.VarintType), ms)
}

func TestMalformedProofsAreRefused(t *testing.T) {
	m := sealed(t, testKey(t), "a block")
	proofField := func(fields ...[]byte) []byte {
		var inner []byte
		for _, f := range fields {
			inner = append(inner, f...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), inner)
	}
	id := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), m.ID[:])
	sig := func(n int) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), make([]byte, n))
	}
	data := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), m.Raw)
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"a proof next to a message", append(slices.Clone(data), proofField(id, sig(64))...)},
		{"two proofs", append(proofField(id, sig(64)), proofField(id, sig(64))...)},
		{"a proof asking for a proof", append(protowire.AppendVarint(protowire.AppendTag(nil, 5, protowire.VarintType), 1), proofField(id, sig(64))...)},
		{"want_proof of the wrong wire type", append(slices.Clone(data), protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), []byte{1})...)},
		{"a proof without a message ID", proofField(sig(64))},
		{"a proof without a signature", proofField(id)},
		{"a signature longer than 128 bytes", proofField(id, sig(129))},
		{"a span start beyond 32 bits", proofField(id, sig(64), protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 1<<32))},
		{"a span of the wrong wire type", proofField(id, sig(64), protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), []byte{1}))},
		{"a busy notice next to a message", append(slices.Clone(data), busyField(500)...)},
		{"a busy notice next to a proof", append(busyField(500), proofField(id, sig(64))...)},
		{"a busy notice beyond 32 bits", busyField(1 << 32)},
		{"a busy notice of the wrong wire type", protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), []byte{1})},
		{"an ask next to a message", append(slices.Clone(data), flagField(7)...)},
		{"an ask next to a busy notice", append(busyField(500), flagField(7)...)},
		{"an ask with its own answer", append(flagField(7), flagField(8)...)},
		{"a clearance next to a proof", append(flagField(8), proofField(id, sig(64))...)},
		{"an ask of the wrong wire type", protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), []byte{1})},
		{"a clearance of the wrong wire type", protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), []byte{1})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenUnicast(testNetwork, tt.frame, 0); !errors.Is(err, ErrMalformed) {
				t.Errorf("OpenUnicast = %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := EncodeProof(Proof{Receipt: Receipt{ID: m.ID}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("EncodeProof without a signature = %v, want ErrMalformed", err)
	}
}

// On gossip the unicast-only fields (a proof, asking for one, a busy
// notice, an ask to send and its answer) are skipped unread, as older nodes skip
// them: a gossip frame an older node would forward is never one a newer
// node rejects.
func TestGossipFramesIgnoreTheUnicastOnlyFields(t *testing.T) {
	m := sealed(t, testKey(t), "gossip")
	frame, _ := EncodeBackground(m.Raw)
	frame = protowire.AppendBytes(protowire.AppendTag(frame, 4, protowire.BytesType), []byte{0xff})
	frame = protowire.AppendBytes(protowire.AppendTag(frame, 5, protowire.BytesType), []byte{1})
	frame = protowire.AppendBytes(protowire.AppendTag(frame, 6, protowire.BytesType), []byte{1})
	frame = protowire.AppendBytes(protowire.AppendTag(frame, 7, protowire.BytesType), []byte{1})
	frame = protowire.AppendBytes(protowire.AppendTag(frame, 8, protowire.BytesType), []byte{1})
	if got, err := OpenBackground(testNetwork, frame, 0); err != nil || got.ID != m.ID {
		t.Fatalf("OpenBackground = %v, %v; want the message", got, err)
	}
	if _, err := OpenUnicast(testNetwork, frame, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("OpenUnicast = %v, want ErrMalformed", err)
	}
}

// A proof names one of the two frames a root sends each third of the
// ring it does not keep in, less a few validators lost to re-delegations;
// below five validators none holds two.
func TestAProofNamesOneOfTheRootsLargestFrames(t *testing.T) {
	for _, tt := range []struct{ n, want int }{{1, 0}, {4, 0}, {5, 2}, {9, 2}, {10, 2}, {22, 4}, {60, 16}, {180, 56}} {
		if got := MinProofSpan(tt.n); got != tt.want {
			t.Errorf("MinProofSpan(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestOnlyAFrameWithAnEnvelopeCarriesOne(t *testing.T) {
	submission, err := EncodeSubmission([]byte("an envelope"), Handover{})
	if err != nil {
		t.Fatal(err)
	}
	busy, err := EncodeBusy(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := proto.Marshal(&BackgroundMessage{Proof: &SubmissionProof{MessageId: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		frame    []byte
		envelope bool
		err      bool
	}{
		{"a submission carries one", submission, true, false},
		{"a busy notice does not", busy, false, false},
		{"an ask to send does not", EncodeAskToSend(), false, false},
		{"a proof does not", proof, false, false},
		{"a truncated frame is malformed", []byte{0x0a, 0x05, 'x'}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CarriesEnvelope(tt.frame)
			if got != tt.envelope || (err != nil) != tt.err || err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("CarriesEnvelope = %v, %v; want %v, error %v", got, err, tt.envelope, tt.err)
			}
		})
	}
}
