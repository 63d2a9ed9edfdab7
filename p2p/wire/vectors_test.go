package wire

import (
	"bufio"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rainp2p/rainp2p/p2p/identity"
)

// protocolDoc holds the wire specification whose test vectors this file
// recomputes. Whoever changes the wire updates both in the same commit;
// RAINP2P_PRINT_VECTORS=1 prints the block as the code computes it.
const protocolDoc = "../../docs/PROTOCOL.md"

// vectors computes every test vector of docs/PROTOCOL.md from fixed
// inputs, in the order the document lists them.
func vectors(t *testing.T) [][2]string {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	k, err := identity.KeyFromPrivate(key)
	if err != nil {
		t.Fatal(err)
	}
	const network = "rainp2p-localnet"
	created := time.UnixMilli(1767225600000) // 2026-01-01T00:00:00Z
	content, err := anypb.New(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	deterministic := proto.MarshalOptions{Deterministic: true}
	envelope := func(to identity.Address) *Message {
		e := &Envelope{Content: proto.Clone(content).(*anypb.Any), Nonce: 0x0102030405060708}
		m, err := Seal(network, e, key, to, created, 0)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	b := envelope(identity.Address{})
	var to identity.Address
	for i := range to {
		to[i] = 0xaa
	}
	u := envelope(to)
	frame, _ := EncodeBackground(b.Raw)
	gid := GossipID(network, b.Envelope)
	marshal := func(m proto.Message) string {
		out, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(out)
	}
	setHash := make([]byte, 32)
	for i := range setHash {
		setHash[i] = 0x11
	}
	origin, _ := crypto.MarshalPublicKey(key.GetPublic())
	receipt := Receipt{ID: b.ID, SpanStart: 3, SpanLen: 4, Level: 2}
	sign := func(r Receipt) []byte {
		sig, err := SignReceipt(key, network, r)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	inner := Receipt{ID: b.ID, SpanStart: 4, SpanLen: 2, Level: 1}
	return [][2]string{
		{"seed", hex.EncodeToString(seed)},
		{"origin", hex.EncodeToString(origin)},
		{"address", k.Address.String()},
		{"peer_id", k.PeerID.String()},
		{"content", marshal(content)},
		{"signing_string", hex.EncodeToString(SigningBytes(network, b.Envelope))},
		{"message_id", b.ID.String()},
		{"signature", hex.EncodeToString(b.Envelope.GetSignature())},
		{"envelope", hex.EncodeToString(b.Raw)},
		{"gossip_id", hex.EncodeToString(gid[:])},
		{"background_frame", hex.EncodeToString(frame)},
		{"submission_frame", hex.EncodeToString(submission(t, b.Raw, setHash))},
		{"raintree_broadcast", marshal(&RainTreeMessage{
			Kind: RainTreeKind_RAIN_TREE_KIND_BROADCAST, Level: 2, Data: b.Raw, SetHeight: 7, SetHash: setHash,
			SpanStart: 3, SpanLen: 4, MessageId: b.ID[:], Mode: "cover",
		})},
		{"raintree_ack", marshal(&RainTreeMessage{
			Kind: RainTreeKind_RAIN_TREE_KIND_ACK, Level: 2, SpanStart: 3, SpanLen: 4, MessageId: b.ID[:],
		})},
		{"receipt_string", hex.EncodeToString(ReceiptBytes(network, receipt))},
		{"receipt", hex.EncodeToString(sign(receipt))},
		{"raintree_paced_ack", marshal(&RainTreeMessage{
			Kind: RainTreeKind_RAIN_TREE_KIND_ACK, Level: 2, SpanStart: 3, SpanLen: 4, MessageId: b.ID[:], Receipt: sign(receipt),
		})},
		{"raintree_forwarded", marshal(&RainTreeMessage{
			Kind: RainTreeKind_RAIN_TREE_KIND_FORWARDED, Level: 2, SpanStart: 3, SpanLen: 4, MessageId: b.ID[:],
			Receipt: sign(inner), ReceiptSpanStart: 4, ReceiptSpanLen: 2, ReceiptLevel: 1,
		})},
		{"submission_proof", hex.EncodeToString(proof(t, Proof{Receipt: inner, Sig: sign(inner), SetHash: setHash}))},
		{"busy_notice", marshal(&BackgroundMessage{BusyMs: 1500})},
		{"ask_to_send", hex.EncodeToString(EncodeAskToSend())},
		{"clear_to_send", hex.EncodeToString(EncodeClearToSend())},
		{"repair_frame", hex.EncodeToString(repair(t, b.Raw))},
		{"unicast_recipient", to.String()},
		{"unicast_message_id", u.ID.String()},
		{"unicast_envelope", hex.EncodeToString(u.Raw)},
	}
}

// documented reads the key: value lines between the vector markers.
func documented(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "<!-- vectors:begin -->":
			in = true
		case line == "<!-- vectors:end -->":
			in = false
		case in && strings.Contains(line, ": "):
			k, v, _ := strings.Cut(line, ": ")
			out[k] = out[k] + v
		case in && line != "" && !strings.HasPrefix(line, "```"):
			t.Fatalf("unexpected line in the vectors block: %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The code produces exactly the vectors docs/PROTOCOL.md documents.
func TestProtocolDocVectors(t *testing.T) {
	want := vectors(t)
	if os.Getenv("RAINP2P_PRINT_VECTORS") != "" {
		var b strings.Builder
		for _, kv := range want {
			fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
		}
		t.Logf("vectors:\n%s", b.String())
	}
	doc := documented(t)
	if len(doc) != len(want) {
		t.Errorf("the document has %d vectors, the code %d", len(doc), len(want))
	}
	for _, kv := range want {
		if got := doc[kv[0]]; got != kv[1] {
			t.Errorf("vector %s: document %q, code %q", kv[0], got, kv[1])
		}
	}
	// The documented envelope opens, and names the documented origin.
	raw, err := hex.DecodeString(doc["envelope"])
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open("rainp2p-localnet", raw, 0)
	if err != nil || m.Origin.String() != doc["address"] || m.ID.String() != doc["message_id"] {
		t.Fatalf("documented envelope opens as %+v, %v", m, err)
	}
}

// submission is the vectors' envelope handed over in two parts, 3+4 and
// 0+1, on the vectors' set hash.
func submission(t *testing.T, raw, setHash []byte) []byte {
	t.Helper()
	frame, err := EncodeSubmission(raw, Handover{SetHash: setHash, Parts: []Part{{Start: 3, Len: 4}, {Start: 0, Len: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func proof(t *testing.T, p Proof) []byte {
	t.Helper()
	b, err := EncodeProof(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repair(t *testing.T, envelope []byte) []byte {
	t.Helper()
	b, err := EncodeRepair(envelope)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
