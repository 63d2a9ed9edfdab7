package unicast

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// strikes counts malformed frames per peer within a window, for at most
// max peers (Config.MaxStrikeRecords). Beyond it, expired records are
// pruned and then arbitrary ones are forgotten, counted in forgotten: a
// peer with many IDs gains little, since each of its streams is reset on
// its first malformed frame anyway.
type strikes struct {
	limit  int
	window time.Duration
	max    int

	mu        sync.Mutex
	m         map[peer.ID]strikeRecord
	forgotten atomic.Uint64
}

type strikeRecord struct {
	n     int
	first time.Time
}

func newStrikes(limit int, window time.Duration, max int) *strikes {
	return &strikes{limit: limit, window: window, max: max, m: map[peer.ID]strikeRecord{}}
}

// add records one strike against p at now and reports whether p has
// reached the limit; its record then starts over.
func (s *strikes) add(p peer.ID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.m[p]
	if !ok || now.Sub(rec.first) > s.window {
		rec = strikeRecord{first: now}
		if !ok && len(s.m) >= s.max {
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
		if len(s.m) < s.max {
			return
		}
		delete(s.m, p)
		s.forgotten.Add(1)
	}
}
