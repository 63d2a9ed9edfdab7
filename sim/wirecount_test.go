package sim

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// On background unicast only the frames that carry an envelope are
// payload copies: a busy notice or a proof is wire bytes only.
func TestBackgroundUnicastFramesCountAsCopiesOnlyWithAnEnvelope(t *testing.T) {
	busy, err := wire.EncodeBusy(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := proto.Marshal(&wire.BackgroundMessage{Proof: &wire.SubmissionProof{MessageId: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	submission, err := wire.EncodeSubmission([]byte("an envelope"), wire.Handover{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		frame  []byte
		copies int64
	}{
		{"a submission is a copy", submission, 1},
		{"a busy notice is not", busy, 0},
		{"a proof is not", proof, 0},
		{"a frame it cannot read is not", []byte{0x0a, 0x05, 'x'}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &countingStream{c: &wireCounter{}, kind: framesBackgroundUnicast}
			s.count(tt.frame, len(tt.frame)+1)
			if got := s.c.payloadMsgs.Load(); got != tt.copies || s.c.toFullNodes.Load() != tt.copies {
				t.Fatalf("%d copies counted, want %d", got, tt.copies)
			}
		})
	}
}
