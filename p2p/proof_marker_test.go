package p2p_test

import (
	"slices"
	"testing"

	"github.com/rainp2p/rainp2p/p2p"
	"github.com/rainp2p/rainp2p/p2p/background"
	"github.com/rainp2p/rainp2p/p2p/raintree"
)

// A validator lists the proof protocol only when it can prove a full
// node's started block: it runs both routers, and RainTree in cover mode
// with ACKs, whose receipts make the proof. A full node asks no proof of
// any other, so that it never passes over an honest parent for a proof
// that parent cannot give.
func TestOnlyAValidatorThatCanProveAStartedBlockSaysItDoes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tweak  func(*p2p.Config)
		listed bool
	}{
		{"the defaults prove", func(*p2p.Config) {}, true},
		{"reference mode cannot", func(c *p2p.Config) { c.RainTree.Mode = raintree.ModeReference }, false},
		{"cover mode without ACKs cannot", func(c *p2p.Config) { c.RainTree.ACK = false }, false},
		{"a RainTree that paces nothing cannot", func(c *p2p.Config) { c.RainTree.PaceBytes = 0 }, false},
		{"a RainTree that paces only frames above a block's size cannot", func(c *p2p.Config) {
			c.RainTree.PaceBytes = c.Background.Gossip.LargeBytes + 1
		}, false},
		{"gossip alone cannot", func(c *p2p.Config) { c.Routers = p2p.RoutersBackgroundOnly }, false},
		{"eager gossip asks for no proofs", func(c *p2p.Config) { c.Background.Gossip.LazyAmongValidators = false }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := network(t, 1, 0, tt.tweak)[0]
			id := background.SubmitProofProtocolID("module-test")
			if got := slices.Contains(v.host.Mux().Protocols(), id); got != tt.listed {
				t.Fatalf("%s listed: %v, want %v", id, got, tt.listed)
			}
		})
	}
}
