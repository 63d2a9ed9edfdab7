// Package dedup decides whether a message is new: a bounded memory of
// recently seen message keys, each with its signer (origin) and the
// creation time of its message, behind a replay window. It is safe for
// concurrent use.
//
// A key is accepted once. A message created outside the window
// [now - Window - Skew, now + Skew] is refused as too old or too new, so a
// message can only be replayed while the Deduper still remembers it. When
// Capacity forces it to forget a key before its message left the window,
// it forgets the oldest key of the origin that holds the most, and keeps
// a floor for that origin, the latest creation time of its keys it
// forgot: everything that origin signed at or before its floor is
// refused as too old. A bounded memory thus never delivers a message
// twice, at worst it refuses an old one; and an origin that floods it,
// even with messages dated Skew ahead, pushes out its own keys and raises
// only its own floor, never anyone else's (the creation time is the
// signer's to choose). Origins that hold only a floor are bounded by
// Capacity too; past that the lowest floor is merged into one that
// applies to every origin.
//
// It is not a rate limiter and does not check signatures: callers verify a
// message before they record its key, so an invalid copy can never make
// the genuine one look like a duplicate.
package dedup

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults: Capacity keys within Window+2*Skew is DefaultCapacity /
// 140 s, about 470 messages a second sustained before floors rise above
// the window's edge. A 32-byte key costs about 180 bytes when few origins
// sign, so the default memory is about 11 MiB; at worst, every key of its
// own origin and as many origins again holding only a floor, about 570
// bytes a key, 35 MiB (TestDefaultCapacityMemory measures both).
const (
	DefaultCapacity = 65536
	DefaultWindow   = 2 * time.Minute
	DefaultSkew     = 10 * time.Second
)

// noFloor is the floor of an origin nothing was forgotten of.
const noFloor = math.MinInt64

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

	mu      sync.Mutex
	seen    map[K]*entry[K]
	byAge   entryHeap[K]          // every key remembered, oldest creation first
	origins map[string]*origin[K] // those with keys or a floor
	busiest originHeap[K]         // origins with keys, the most keys first
	idle    originHeap[K]         // origins with only a floor, the lowest first
	floor   int64                 // floors of idle origins merged for room; refused at or below

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
	return &Deduper[K]{
		cfg:     cfg,
		seen:    make(map[K]*entry[K]),
		byAge:   entryHeap[K]{slot: slotAge},
		origins: make(map[string]*origin[K]),
		busiest: originHeap[K]{less: moreKeys[K]},
		idle:    originHeap[K]{less: lowerFloor[K]},
		floor:   noFloor,
	}, nil
}

// Observe records key, of a message that origin signed at created, and
// says whether it is new. Only First records the key; every other verdict
// is counted. A key must always come with the same origin (a message ID
// covers its signer).
func (d *Deduper[K]) Observe(key K, origin string, created time.Time) Verdict {
	c := created.UnixMilli()
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.checkLocked(key, origin, c)
	switch v {
	case First:
		d.addLocked(key, origin, c)
		for len(d.seen) > d.cfg.Capacity {
			d.forgetLocked()
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
func (d *Deduper[K]) Check(key K, origin string, created time.Time) Verdict {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.checkLocked(key, origin, created.UnixMilli())
}

func (d *Deduper[K]) checkLocked(key K, origin string, c int64) Verdict {
	now := d.cfg.Now()
	oldest := now.Add(-d.cfg.Window - d.cfg.Skew).UnixMilli()
	d.expireLocked(oldest)
	switch {
	case c > now.Add(d.cfg.Skew).UnixMilli():
		return TooNew
	case c < oldest || c <= d.floor:
		return TooOld
	}
	if o := d.origins[origin]; o != nil && c <= o.floor {
		return TooOld
	}
	if _, dup := d.seen[key]; dup {
		return Duplicate
	}
	return First
}

func (d *Deduper[K]) addLocked(key K, name string, c int64) {
	o := d.origins[name]
	if o == nil {
		o = &origin[K]{name: name, keys: entryHeap[K]{slot: slotOrigin}, floor: noFloor, at: -1}
		d.origins[name] = o
	}
	e := &entry[K]{key: key, created: c, origin: o}
	d.seen[key] = e
	heap.Push(&d.byAge, e)
	heap.Push(&o.keys, e)
	d.placeLocked(o)
}

// forgetLocked makes room: it forgets the oldest key of the origin that
// holds the most, and raises that origin's floor to it. An origin that
// floods the Deduper thus pushes out its own keys and refuses only its own
// old messages; the others keep theirs.
func (d *Deduper[K]) forgetLocked() {
	o := d.busiest.os[0]
	e := o.keys.es[0]
	d.removeLocked(e)
	o.floor = max(o.floor, e.created)
	d.evicted.Add(1)
	d.placeLocked(o)
	// Idle origins are bounded too: past Capacity of them, the lowest
	// floor merges into the Deduper's own, which refuses for everyone.
	for d.idle.Len() > d.cfg.Capacity {
		lo := heap.Pop(&d.idle).(*origin[K])
		d.floor = max(d.floor, lo.floor)
		delete(d.origins, lo.name)
	}
}

// expireLocked forgets keys of messages the window refuses anyway, and
// floors below it; that needs no floor.
func (d *Deduper[K]) expireLocked(oldest int64) {
	for d.byAge.Len() > 0 && d.byAge.es[0].created < oldest {
		e := d.byAge.es[0]
		d.removeLocked(e)
		d.placeLocked(e.origin)
	}
	for d.idle.Len() > 0 && d.idle.os[0].floor < oldest {
		lo := heap.Pop(&d.idle).(*origin[K])
		delete(d.origins, lo.name)
	}
}

// removeLocked forgets e everywhere but leaves its origin to placeLocked.
func (d *Deduper[K]) removeLocked(e *entry[K]) {
	delete(d.seen, e.key)
	heap.Remove(&d.byAge, e.at[slotAge])
	heap.Remove(&e.origin.keys, e.at[slotOrigin])
}

// placeLocked puts o where it belongs after its keys changed: among the
// busiest while it holds keys, among the idle while it holds only a floor,
// nowhere (forgotten) otherwise.
func (d *Deduper[K]) placeLocked(o *origin[K]) {
	switch {
	case o.keys.Len() > 0 && o.in == &d.busiest:
		heap.Fix(&d.busiest, o.at)
		return
	case o.in != nil:
		heap.Remove(o.in, o.at)
	}
	switch {
	case o.keys.Len() > 0:
		heap.Push(&d.busiest, o)
	case o.floor > noFloor:
		heap.Push(&d.idle, o)
	default:
		delete(d.origins, o.name)
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

// Floor is the highest floor any origin has, and false if no key was
// forgotten for capacity yet (or every floor has left the window).
func (d *Deduper[K]) Floor() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.floor
	for _, o := range d.origins {
		f = max(f, o.floor)
	}
	if f == noFloor {
		return time.Time{}, false
	}
	return time.UnixMilli(f), true
}

// The two heaps an entry is in.
const (
	slotAge = iota
	slotOrigin
)

type entry[K comparable] struct {
	key     K
	created int64
	origin  *origin[K]
	at      [2]int // index in byAge and in its origin's keys
}

// origin is what the Deduper holds for one signer: its keys and the
// latest creation time of its keys forgotten for capacity.
type origin[K comparable] struct {
	name  string
	keys  entryHeap[K]
	floor int64
	in    *originHeap[K] // busiest, idle or nil
	at    int
}

// entryHeap is a min-heap of entries by creation time that keeps each
// entry's index in its slot.
type entryHeap[K comparable] struct {
	es   []*entry[K]
	slot int
}

func (h *entryHeap[K]) Len() int           { return len(h.es) }
func (h *entryHeap[K]) Less(i, j int) bool { return h.es[i].created < h.es[j].created }
func (h *entryHeap[K]) Swap(i, j int) {
	h.es[i], h.es[j] = h.es[j], h.es[i]
	h.es[i].at[h.slot], h.es[j].at[h.slot] = i, j
}
func (h *entryHeap[K]) Push(x any) {
	e := x.(*entry[K])
	e.at[h.slot] = len(h.es)
	h.es = append(h.es, e)
}
func (h *entryHeap[K]) Pop() any {
	e := h.es[len(h.es)-1]
	h.es[len(h.es)-1] = nil
	h.es = h.es[:len(h.es)-1]
	return e
}

// originHeap is a heap of origins ordered by less.
type originHeap[K comparable] struct {
	os   []*origin[K]
	less func(a, b *origin[K]) bool
}

// moreKeys orders the busiest origin first; of equals, the one whose
// oldest key is the newest: messages dated ahead, which a flood from
// fresh origins uses, go before an honest origin's older ones.
func moreKeys[K comparable](a, b *origin[K]) bool {
	if a.keys.Len() != b.keys.Len() {
		return a.keys.Len() > b.keys.Len()
	}
	return a.keys.es[0].created > b.keys.es[0].created
}

func lowerFloor[K comparable](a, b *origin[K]) bool { return a.floor < b.floor }

func (h *originHeap[K]) Len() int           { return len(h.os) }
func (h *originHeap[K]) Less(i, j int) bool { return h.less(h.os[i], h.os[j]) }
func (h *originHeap[K]) Swap(i, j int) {
	h.os[i], h.os[j] = h.os[j], h.os[i]
	h.os[i].at, h.os[j].at = i, j
}
func (h *originHeap[K]) Push(x any) {
	o := x.(*origin[K])
	o.in, o.at = h, len(h.os)
	h.os = append(h.os, o)
}
func (h *originHeap[K]) Pop() any {
	o := h.os[len(h.os)-1]
	h.os[len(h.os)-1] = nil
	h.os = h.os[:len(h.os)-1]
	o.in = nil
	return o
}
