package background

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// The forward delay follows the round trips to a full node's validators.
//
// A full node holds a message until the validators in its mesh, which get
// it from RainTree, have said they have it (release.go). How long that
// takes at most is how far apart RainTree reaches them: up to two hops,
// plus the link their IDONTWANT crosses, plus what queues and processing
// add to each; about four one-way latencies, two round trips. That is 40
// ms on 10 ms links and far more on a network spread over continents, or
// on a loaded one. So a full node pings each validator that joins its
// mesh, and then one validator of its mesh every rttInterval (go-libp2p's
// ping, which keeps a moving average of each peer's round trip in the
// peerstore), and holds a small message at most twice the median round
// trip of the validators in its mesh, never less than ForwardDelay nor
// more than MaxForwardDelay.
//
// Round trips, and not how late validators have said they have messages:
// a validator below a silent one says so only after gossip has repaired
// it, a forward delay later, so a delay learnt from those would feed on
// itself. The median, so one validator that answers pings late (or never)
// does not set it; validators that all answer late can raise it to
// MaxForwardDelay and no further, which only slows the repair they could
// as well withhold.

// rttInterval is how often a full node pings one of its mesh validators;
// rttTimeout how long it waits for the answer.
const (
	rttInterval = 2 * time.Second
	rttTimeout  = 5 * time.Second
)

// rttLoop pings the mesh's validators in turn until Close, and at once
// every one that joined the mesh unmeasured.
func (r *Router) rttLoop() {
	t := time.NewTicker(rttInterval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-r.ctx.Done():
			return
		case <-r.have.joined:
			for _, p := range r.have.meshValidators() {
				if r.host.Peerstore().LatencyEWMA(p) == 0 {
					r.ping(p)
				}
			}
			continue
		case <-t.C:
		}
		vs := r.have.meshValidators()
		if len(vs) == 0 {
			continue
		}
		r.ping(vs[i%len(vs)])
	}
}

// ping measures one round trip to p; go-libp2p's ping records it.
func (r *Router) ping(p peer.ID) {
	ctx, cancel := context.WithTimeout(r.ctx, rttTimeout)
	defer cancel()
	select {
	case res := <-ping.Ping(ctx, r.host, p):
		if res.Error != nil && r.ctx.Err() == nil {
			r.c.pingErrors.Add(1)
		}
	case <-ctx.Done():
		if r.ctx.Err() == nil {
			r.c.pingErrors.Add(1)
		}
	}
}

// meshRTT is the median of the round trips measured to the validators in
// the mesh (the lower one of an even count, so one slow validator of two
// does not set it), or 0 when none is known.
func (r *Router) meshRTT() time.Duration {
	var rtts []time.Duration
	for _, p := range r.have.meshValidators() {
		if d := r.host.Peerstore().LatencyEWMA(p); d > 0 {
			rtts = append(rtts, d)
		}
	}
	if len(rtts) == 0 {
		return 0
	}
	slices.Sort(rtts)
	return rtts[(len(rtts)-1)/2]
}
