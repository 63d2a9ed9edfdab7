package background

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// maxRateLimited bounds the peers whose direct-send token buckets are
// kept. When it is reached, buckets that have refilled (idle peers) are
// dropped first; a peer whose bucket is forgotten starts again with a full
// burst, which at worst lets a peer with many IDs send one burst per ID.
const maxRateLimited = 4096

// peerLimiter is a token bucket per sending peer.
type peerLimiter struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[peer.ID]*rate.Limiter
}

func newPeerLimiter(perSecond float64, burst int) *peerLimiter {
	return &peerLimiter{limit: rate.Limit(perSecond), burst: burst, m: map[peer.ID]*rate.Limiter{}}
}

// allow takes one token from p's bucket.
func (l *peerLimiter) allow(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[p]
	if !ok {
		if len(l.m) >= maxRateLimited {
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
		if len(l.m) < maxRateLimited {
			return
		}
		delete(l.m, p)
	}
}
