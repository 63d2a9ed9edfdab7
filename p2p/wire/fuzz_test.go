package wire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

// Fuzz targets for every decoder of network input in this package. Run one
// with, for example, go test -run '^$' -fuzz FuzzDecodeEnvelope ./p2p/wire.

func envelopeSeeds(f *testing.F) {
	f.Helper()
	m := sealed(f, testKey(f), "seed")
	f.Add(m.Raw)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00, 0x10, 0x01})
	f.Add(append(bytes.Clone(m.Raw), 0x10, 0x02))
	f.Add(append(bytes.Clone(m.Raw), 0xa0, 0x06, 0x01))
}

// DecodeEnvelope accepts no more than proto.Unmarshal does, and where both
// accept, they agree field by field.
func FuzzDecodeEnvelope(f *testing.F) {
	envelopeSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeEnvelope(in, 0)
		if err != nil {
			return
		}
		want := &Envelope{}
		// Both skip unknown fields; proto.Unmarshal would keep them.
		if perr := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(in, want); perr != nil {
			t.Fatalf("accepted what proto.Unmarshal refuses (%v): %x", perr, in)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("decoded %v, proto.Unmarshal %v", got, want)
		}
	})
}

// Open never panics, and what it accepts re-encodes to an envelope with
// the same ID, origin and recipient.
func FuzzOpen(f *testing.F) {
	envelopeSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Open(testNetwork, in, 0)
		if err != nil {
			if !IsInvalid(err) && !bytes.Contains([]byte(err.Error()), []byte("too large")) {
				t.Fatalf("error %v is neither invalid nor a size limit", err)
			}
			return
		}
		raw, err := proto.Marshal(m.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Open(testNetwork, raw, 0)
		if err != nil || again.ID != m.ID || again.Origin != m.Origin || again.Recipient != m.Recipient {
			t.Fatalf("re-encoded envelope opens as %+v, %v; first %+v", again, err, m)
		}
		if m.Origin == (identity.Address{}) {
			t.Fatal("accepted an envelope with the zero origin")
		}
	})
}

// The background frame decoders agree with proto.Unmarshal: what the
// unicast reading accepts, proto.Unmarshal accepts with the same fields,
// and the gossip reading, which skips the proof fields unread, accepts it
// with the same envelope. The gossip ID is defined for every input.
func FuzzBackgroundFrame(f *testing.F) {
	m := sealed(f, testKey(f), "seed")
	frame, _ := EncodeBackground(m.Raw)
	f.Add(frame)
	f.Add([]byte{0x0a, 0x01})
	f.Add([]byte{0x0a, 0x00, 0x0a, 0x00})
	sub, _ := EncodeSubmission(m.Raw, Handover{SetHash: []byte{1, 2}, Parts: []Part{{3, 4}, {7, 1}}, WantProof: true})
	f.Add(sub)
	proof, _ := EncodeProof(Proof{Receipt: Receipt{ID: m.ID, SpanStart: 3, SpanLen: 4, Level: 2}, Sig: make([]byte, 64), SetHash: []byte{1}})
	f.Add(proof)
	f.Fuzz(func(t *testing.T, in []byte) {
		if id := BackgroundMessageID(testNetwork, in); len(id) != IDLen {
			t.Fatalf("gossip ID of %d bytes", len(id))
		}
		if bm, err := OpenBackground(testNetwork, in, 0); err == nil {
			if g := GossipID(testNetwork, bm.Envelope); BackgroundMessageID(testNetwork, in) != string(g[:]) {
				t.Fatal("gossip ID of a valid frame is not its envelope's")
			}
		}
		got, err := parseBackground(in, 0, true)
		if err != nil {
			return
		}
		var want BackgroundMessage
		if perr := proto.Unmarshal(in, &want); perr != nil {
			t.Fatalf("accepted what proto.Unmarshal refuses (%v): %x", perr, in)
		}
		if data, err := BackgroundEnvelope(in, 0); err != nil || !bytes.Equal(data, got.data) || !bytes.Equal(data, want.GetData()) {
			t.Fatalf("envelope bytes: gossip %x (%v), unicast %x, proto.Unmarshal %x", data, err, got.data, want.GetData())
		}
		h := got.handover
		if !bytes.Equal(h.SetHash, want.GetSetHash()) || len(h.Parts) != len(want.GetParts()) || h.WantProof != want.GetWantProof() {
			t.Fatalf("handover %+v, proto.Unmarshal %v", h, &want)
		}
		for i, p := range want.GetParts() {
			if h.Parts[i] != (Part{Start: int(p.GetStart()), Len: int(p.GetLen())}) {
				t.Fatalf("part %d: %+v, proto.Unmarshal %v", i, h.Parts[i], p)
			}
		}
		if wp := want.GetProof(); (got.proof != nil) != (wp != nil) ||
			wp != nil && (!bytes.Equal(got.proof.Receipt.ID[:], wp.GetMessageId()) || !bytes.Equal(got.proof.Sig, wp.GetReceipt()) ||
				got.proof.Receipt.SpanStart != wp.GetReceiptSpanStart() || got.proof.Receipt.SpanLen != wp.GetReceiptSpanLen() ||
				got.proof.Receipt.Level != wp.GetReceiptLevel() || !bytes.Equal(got.proof.SetHash, wp.GetSetHash())) {
			t.Fatalf("proof %+v, proto.Unmarshal %v", got.proof, wp)
		}
	})
}

// A RainTree frame and the message ID in it decode without panicking; the
// router refuses whatever else is wrong with them.
func FuzzRainTreeFrame(f *testing.F) {
	m := sealed(f, testKey(f), "seed")
	frame, _ := proto.Marshal(&RainTreeMessage{Kind: RainTreeKind_RAIN_TREE_KIND_BROADCAST, Level: 2, Data: m.Raw, MessageId: m.ID[:]})
	f.Add(frame)
	ack, _ := proto.Marshal(&RainTreeMessage{Kind: RainTreeKind_RAIN_TREE_KIND_ACK, Level: 1, MessageId: m.ID[:], SpanStart: 3, SpanLen: 2})
	f.Add(ack)
	f.Fuzz(func(t *testing.T, in []byte) {
		var rt RainTreeMessage
		if proto.Unmarshal(in, &rt) != nil {
			return
		}
		if id, err := ParseMessageID(rt.GetMessageId()); err == nil && !bytes.Equal(id[:], rt.GetMessageId()) {
			t.Fatal("message ID changed in parsing")
		}
		if len(rt.GetData()) > 0 {
			if msg, err := Open(testNetwork, rt.GetData(), 0); err == nil && msg.ID != ComputeID(testNetwork, msg.Envelope) {
				t.Fatal("opened message has another ID")
			}
		}
	})
}
