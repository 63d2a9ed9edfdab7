package unicast

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxStrikeRecords bounds the peers whose strikes are remembered. Beyond
// it, expired records are pruned and then an arbitrary one is forgotten:
// a peer with many IDs gains nothing, since each of its streams is reset
// on its first malformed frame anyway.
const maxStrikeRecords = 4096

// strikes counts malformed frames per peer within a window.
type strikes struct {
	limit  int
	window time.Duration

	mu sync.Mutex
	m  map[peer.ID]strikeRecord
}

type strikeRecord struct {
	n     int
	first time.Time
}

func newStrikes(limit int, window time.Duration) *strikes {
	return &strikes{limit: limit, window: window, m: map[peer.ID]strikeRecord{}}
}

// add records one strike against p at now and reports whether p has
// reached the limit; its record then starts over.
func (s *strikes) add(p peer.ID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.m[p]
	if !ok || now.Sub(rec.first) > s.window {
		rec = strikeRecord{first: now}
		if !ok && len(s.m) >= maxStrikeRecords {
			s.pruneLocked(now)
		}
	}
	rec.n++
	if rec.n >= s.limit {
		delete(s.m, p)
		return true
	}
	s.m[p] = rec
	return false
}

func (s *strikes) pruneLocked(now time.Time) {
	for p, rec := range s.m {
		if now.Sub(rec.first) > s.window {
			delete(s.m, p)
		}
	}
	for p := range s.m {
		if len(s.m) < maxStrikeRecords {
			return
		}
		delete(s.m, p)
	}
}
