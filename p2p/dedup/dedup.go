// Package dedup decides whether a message is new: a bounded memory of
// recently seen message keys, each with the creation time of its message,
// behind a replay window. It is safe for concurrent use.
//
// A key is accepted once. A message created outside the window
// [now - Window - Skew, now + Skew] is refused as too old or too new, so a
// message can only be replayed while the Deduper still remembers it. When
// Capacity forces it to forget a key before its message left the window,
// the Deduper keeps a floor, the latest creation time it forgot, and
// refuses everything created at or before the floor as too old: a bounded
// memory never delivers a message twice, at worst it refuses an old one.
// Forgetting starts with the oldest creation time, so the floor stays as
// low as the traffic allows.
//
// It is not a rate limiter and does not check signatures: callers verify a
// message before they record its key, so an invalid copy can never make
// the genuine one look like a duplicate.
package dedup

import (
	"container/heap"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults: Capacity keys within Window+2*Skew is DefaultCapacity /
// 140 s, about 470 messages a second sustained before the floor rises
// above the window's edge. A 32-byte key costs about 140 bytes, so the
// default memory is about 9 MiB (TestDefaultCapacityMemory measures it).
const (
	DefaultCapacity = 65536
	DefaultWindow   = 2 * time.Minute
	DefaultSkew     = 10 * time.Second
)

// Sentinel errors of New.
var (
	ErrBadCapacity = errors.New("dedup capacity must be at least 1")
	ErrBadWindow   = errors.New("dedup window must be positive and skew not negative")
)

// Verdict is the Deduper's answer for one message.
type Verdict int

// The verdicts.
const (
	// First: new and within the window; the key is now remembered.
	First Verdict = iota
	// Duplicate: the key is remembered.
	Duplicate
	// TooOld: created before the window or at or before the floor.
	TooOld
	// TooNew: created more than Skew after now.
	TooNew
)

func (v Verdict) String() string {
	switch v {
	case First:
		return "first"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too_old"
	case TooNew:
		return "too_new"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Config configures a Deduper.
type Config struct {
	// Capacity bounds the keys remembered. Size it with Window: it should
	// hold every message of Window + 2*Skew at the expected rate.
	Capacity int
	// Window is how long after its creation a message is still accepted.
	Window time.Duration
	// Skew is the clock difference allowed between originator and
	// receiver, in both directions.
	Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Capacity: DefaultCapacity, Window: DefaultWindow, Skew: DefaultSkew}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Capacity < 1:
		return ErrBadCapacity
	case c.Window <= 0 || c.Skew < 0:
		return fmt.Errorf("%w: window %v, skew %v", ErrBadWindow, c.Window, c.Skew)
	}
	return nil
}

// Deduper remembers up to Capacity keys of type K.
type Deduper[K comparable] struct {
	cfg Config

	mu    sync.Mutex
	seen  map[K]int64 // creation time in Unix milliseconds
	order byCreated[K]
	floor int64 // latest creation time forgotten for capacity; refused at or below

	duplicates, tooOld, tooNew, evicted atomic.Uint64
}

// New returns a Deduper for cfg.
func New[K comparable](cfg Config) (*Deduper[K], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Deduper[K]{cfg: cfg, seen: make(map[K]int64), floor: -1 << 63}, nil
}

// Observe records key, for a message created at created, and says whether
// it is new. Only First records the key; every other verdict is counted.
func (d *Deduper[K]) Observe(key K, created time.Time) Verdict {
	c := created.UnixMilli()
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.checkLocked(key, c)
	switch v {
	case First:
		d.seen[key] = c
		heap.Push(&d.order, entry[K]{key: key, created: c})
		for len(d.seen) > d.cfg.Capacity {
			e := heap.Pop(&d.order).(entry[K])
			delete(d.seen, e.key)
			d.floor = max(d.floor, e.created)
			d.evicted.Add(1)
		}
	case Duplicate:
		d.duplicates.Add(1)
	case TooOld:
		d.tooOld.Add(1)
	case TooNew:
		d.tooNew.Add(1)
	}
	return v
}

// Check says what Observe would answer, without recording or counting.
func (d *Deduper[K]) Check(key K, created time.Time) Verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.checkLocked(key, created.UnixMilli())
}

func (d *Deduper[K]) checkLocked(key K, c int64) Verdict {
	now := d.cfg.Now()
	oldest := now.Add(-d.cfg.Window - d.cfg.Skew).UnixMilli()
	d.expireLocked(oldest)
	switch {
	case c > now.Add(d.cfg.Skew).UnixMilli():
		return TooNew
	case c < oldest || c <= d.floor:
		return TooOld
	}
	if _, dup := d.seen[key]; dup {
		return Duplicate
	}
	return First
}

// expireLocked forgets keys of messages the window refuses anyway; that
// needs no floor.
func (d *Deduper[K]) expireLocked(oldest int64) {
	for len(d.order) > 0 && d.order[0].created < oldest {
		e := heap.Pop(&d.order).(entry[K])
		delete(d.seen, e.key)
	}
}

// Stats counts the verdicts other than First, and the keys forgotten for
// capacity (each may have raised the floor).
type Stats struct {
	Duplicates, TooOld, TooNew, Evicted uint64
}

// Stats returns the counters.
func (d *Deduper[K]) Stats() Stats {
	return Stats{
		Duplicates: d.duplicates.Load(),
		TooOld:     d.tooOld.Load(),
		TooNew:     d.tooNew.Load(),
		Evicted:    d.evicted.Load(),
	}
}

// Duplicates is the number of repeats suppressed so far.
func (d *Deduper[K]) Duplicates() uint64 { return d.duplicates.Load() }

// Len is the number of keys remembered.
func (d *Deduper[K]) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// Floor is the latest creation time forgotten for capacity, and false if
// none was.
func (d *Deduper[K]) Floor() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.evicted.Load() == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(d.floor), true
}

type entry[K comparable] struct {
	key     K
	created int64
}

// byCreated is a min-heap by creation time.
type byCreated[K comparable] []entry[K]

func (h byCreated[K]) Len() int           { return len(h) }
func (h byCreated[K]) Less(i, j int) bool { return h[i].created < h[j].created }
func (h byCreated[K]) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *byCreated[K]) Push(x any)        { *h = append(*h, x.(entry[K])) }
func (h *byCreated[K]) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
