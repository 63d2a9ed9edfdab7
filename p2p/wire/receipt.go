package wire

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// ReceiptDomain opens every receipt's signing string, so a receipt can
// never be mistaken for an envelope signature or anything else the key
// signs.
const ReceiptDomain = "rainp2p/raintree-receipt/v1"

// ErrBadReceipt is returned for a receipt whose signature does not verify.
var ErrBadReceipt = errors.New("bad forwarding receipt")

// Receipt names a RainTree frame a validator received: the message, and
// the span and level the frame gave it.
type Receipt struct {
	ID                        MessageID
	SpanStart, SpanLen, Level uint32
}

// ReceiptBytes returns what a validator signs when it acknowledges a
// RainTree frame (docs/PROTOCOL.md, "Forwarding receipts"): the domain
// tag, the network ID, the message ID, then the span start, span length
// and level, in SigningBytes' encoding (8-byte big-endian integers, each
// variable-length field preceded by its length).
func ReceiptBytes(networkID string, r Receipt) []byte {
	var b bytes.Buffer
	f := signingWriter{w: &b}
	f.field([]byte(ReceiptDomain))
	f.field([]byte(networkID))
	f.field(r.ID[:])
	f.u64(uint64(r.SpanStart))
	f.u64(uint64(r.SpanLen))
	f.u64(uint64(r.Level))
	return b.Bytes()
}

// SignReceipt signs r with key.
func SignReceipt(key crypto.PrivKey, networkID string, r Receipt) ([]byte, error) {
	sig, err := key.Sign(ReceiptBytes(networkID, r))
	if err != nil {
		return nil, fmt.Errorf("signing a receipt: %w", err)
	}
	return sig, nil
}

// VerifyReceipt checks that sig is pub's signature over r; it returns
// ErrBadReceipt otherwise.
func VerifyReceipt(pub crypto.PubKey, networkID string, r Receipt, sig []byte) error {
	if pub == nil || len(sig) == 0 {
		return fmt.Errorf("%w: no key or no signature", ErrBadReceipt)
	}
	ok, err := pub.Verify(ReceiptBytes(networkID, r), sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: %v", ErrBadReceipt, errOr(err, "signature does not verify"))
	}
	return nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
