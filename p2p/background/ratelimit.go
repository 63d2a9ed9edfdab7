package background

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// peerLimiter is a token bucket per sending peer, for at most max peers
// (Config.MaxRateLimitedPeers). When it is reached, buckets that have
// refilled (idle peers) are dropped first, losing nothing; then arbitrary
// ones, counted in forgotten: such a peer starts again with a full burst,
// which at worst lets a peer with many IDs send one burst per ID.
type peerLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex
	m         map[peer.ID]*rate.Limiter
	forgotten atomic.Uint64
}

func newPeerLimiter(perSecond float64, burst, max int) *peerLimiter {
	return &peerLimiter{limit: rate.Limit(perSecond), burst: burst, max: max, m: map[peer.ID]*rate.Limiter{}}
}

// allow takes one token from p's bucket.
func (l *peerLimiter) allow(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[p]
	if !ok {
		if len(l.m) >= l.max {
			l.pruneLocked()
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[p] = lim
	}
	return lim.Allow()
}

func (l *peerLimiter) pruneLocked() {
	for p, lim := range l.m {
		if lim.Tokens() >= float64(l.burst) {
			delete(l.m, p)
		}
	}
	for p := range l.m {
		if len(l.m) < l.max {
			return
		}
		delete(l.m, p)
		l.forgotten.Add(1)
	}
}
