package p2p_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rainp2p/rainp2p/p2p"
)

// Attack: peers connect once each under a new ID, and leave. The address
// book of connected peers forgets each as its connection closes, so it
// never holds more than the connections do.
func TestPeersThatConnectAndLeaveAreForgotten(t *testing.T) {
	v := network(t, 1, 0, nil)[0]
	const visitors = 20
	for i := range visitors {
		_, h, _ := newHost(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := h.Connect(ctx, peer.AddrInfo{ID: v.host.ID(), Addrs: v.host.Addrs()})
		cancel()
		if err != nil {
			t.Fatalf("visitor %d: %v", i, err)
		}
		waitFor(t, 5*time.Second, "the visitor in the book", func() bool { return p2p.BookLen(v.mod) == 1 })
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the visitor forgotten", func() bool { return p2p.BookLen(v.mod) == 0 })
	}
}
