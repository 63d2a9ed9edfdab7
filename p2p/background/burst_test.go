package background

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rainp2p/rainp2p/p2p/wire"
)

// With the default queue sizes a burst of 2000 broadcasts from one node
// reaches every node in full, and no loss counter moves.
func TestBurstIsDeliveredWithoutDrops(t *testing.T) {
	const burst = 2000
	cfg := testConfig("burst")
	nodes := []*node{startNode(t, cfg), startNode(t, cfg), startNode(t, cfg)}
	for i := range nodes {
		for j := i + 1; j < len(nodes); j++ {
			connect(t, nodes[i].h, nodes[j].h)
		}
	}
	for _, nd := range nodes {
		waitReady(t, nd, len(nodes)-1)
	}
	origin := nodes[0]
	envs := make([]*wire.Message, burst)
	for i := range envs {
		envs[i] = envelope(t, origin, fmt.Sprintf("burst-%d", i))
	}
	start := time.Now()
	// Four publishers overlap signing with pubsub's event-loop round trip.
	const publishers = 4
	errs := make(chan error, publishers)
	for p := range publishers {
		go func() {
			for i := p; i < burst; i += publishers {
				if err := origin.r.Broadcast(context.Background(), envs[i]); err != nil {
					errs <- fmt.Errorf("broadcast %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range publishers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("published %d in %v", burst, time.Since(start))
	for i, nd := range nodes[1:] {
		eventually(t, 60*time.Second, fmt.Sprintf("node %d to receive the burst", i+1), func() bool {
			return nd.in.total() >= burst
		})
	}
	t.Logf("delivered in %v", time.Since(start))
	time.Sleep(3 * cfg.Gossip.HeartbeatInterval) // absence of late drops cannot be awaited
	for i, nd := range nodes {
		st := nd.r.Stats()
		if st.DroppedSubscriptionFull != 0 || st.DroppedValidation != 0 || st.DroppedOutbound != 0 {
			t.Errorf("node %d dropped messages: %+v", i, st)
		}
		if i > 0 && (st.DeliveredGossip != burst || nd.in.total() != burst) {
			t.Errorf("node %d delivered %d (handler saw %d), want %d", i, st.DeliveredGossip, nd.in.total(), burst)
		}
	}
	if st := origin.r.Stats(); st.Published != burst {
		t.Errorf("Published = %d, want %d", st.Published, burst)
	}
}
