package dedup

import (
	"cmp"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func newTest(t *testing.T, capacity int, c *clock) *Deduper[int] {
	t.Helper()
	d, err := New[int](Config{Capacity: capacity, Window: time.Minute, Skew: 10 * time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestObserve(t *testing.T) {
	type obs struct {
		key  int
		age  time.Duration // before now; negative is in the future
		want Verdict
		by   string // the origin; "" is a
	}
	tests := []struct {
		name     string
		capacity int
		feed     []obs
	}{
		{"a new key is first", 4, []obs{{1, 0, First, ""}}},
		{"a repeat is a duplicate", 4, []obs{{1, 0, First, ""}, {1, 0, Duplicate, ""}}},
		{"distinct keys are all first", 4, []obs{{1, 0, First, ""}, {2, 0, First, ""}, {3, 0, First, ""}}},
		{"a message older than window plus skew is too old", 4, []obs{{1, 71 * time.Second, TooOld, ""}}},
		{"a message just inside window plus skew is accepted", 4, []obs{{1, 69 * time.Second, First, ""}}},
		{"a message beyond the skew in the future is too new", 4, []obs{{1, -11 * time.Second, TooNew, ""}}},
		{"a message within the skew in the future is accepted", 4, []obs{{1, -9 * time.Second, First, ""}}},
		{"a forgotten key is refused as too old, never first again", 2, []obs{
			{1, 3 * time.Second, First, ""}, {2, 2 * time.Second, First, ""}, {3, time.Second, First, ""}, {1, 3 * time.Second, TooOld, ""}}},
		{"the oldest creation time is forgotten first, whatever the arrival order", 2, []obs{
			{2, time.Second, First, ""}, {1, 3 * time.Second, First, ""}, {3, 2 * time.Second, First, ""},
			{2, time.Second, Duplicate, ""}, {3, 2 * time.Second, Duplicate, ""}, {1, 3 * time.Second, TooOld, ""}}},
		{"anything at or below the floor is too old, even a new key", 2, []obs{
			{1, 3 * time.Second, First, ""}, {2, 2 * time.Second, First, ""}, {3, time.Second, First, ""}, {4, 3 * time.Second, TooOld, ""}, {5, 2500 * time.Millisecond, First, ""}}},
		{"the origin holding the most keys is forgotten first, though another's key is older", 3, []obs{
			{1, 5 * time.Second, First, ""}, {2, 0, First, "b"}, {3, -5 * time.Second, First, "b"}, {4, -9 * time.Second, First, "b"},
			{1, 5 * time.Second, Duplicate, ""}, {2, 0, TooOld, "b"}, {3, -5 * time.Second, Duplicate, "b"}}},
		{"of origins holding as many keys, the one dated furthest ahead is forgotten first", 2, []obs{
			{1, 5 * time.Second, First, ""}, {2, -9 * time.Second, First, "b"}, {3, 0, First, "c"},
			{2, -9 * time.Second, TooOld, "b"}, {1, 5 * time.Second, Duplicate, ""}, {3, 0, Duplicate, "c"}}},
		{"a flood dated ahead raises only its own origin's floor", 2, []obs{
			{1, -9 * time.Second, First, "b"}, {2, -9 * time.Second, First, "b"}, {3, -9 * time.Second, First, "b"},
			{4, 0, First, ""}, {5, -time.Second, First, ""}, {6, -8 * time.Second, TooOld, "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: t0}
			d := newTest(t, tt.capacity, c)
			for i, o := range tt.feed {
				if got := d.Observe(o.key, cmp.Or(o.by, "a"), c.now.Add(-o.age)); got != o.want {
					t.Fatalf("step %d: key %d aged %v: got %v, want %v", i, o.key, o.age, got, o.want)
				}
			}
			if d.Len() > tt.capacity {
				t.Fatalf("remembers %d keys, capacity %d", d.Len(), tt.capacity)
			}
		})
	}
}

func TestObserveForgetsKeysThatLeftTheWindowWithoutRaisingTheFloor(t *testing.T) {
	c := &clock{now: t0}
	d := newTest(t, 2, c)
	d.Observe(1, "a", c.now)
	d.Observe(2, "a", c.now)
	c.now = c.now.Add(2 * time.Minute)
	if got := d.Observe(3, "a", c.now.Add(-time.Minute)); got != First {
		t.Fatalf("fresh key after expiry: %v", got)
	}
	if _, ok := d.Floor(); ok || d.Len() != 1 {
		t.Fatalf("expiry raised the floor or kept keys: len %d", d.Len())
	}
	if got := d.Observe(1, "a", t0); got != TooOld {
		t.Fatalf("replay of an expired key: %v, want too old", got)
	}
}

// TestNoKeyIsEverFirstTwice feeds random keys and times through a small
// deduper and checks the promise: nothing is first twice.
func TestNoKeyIsEverFirstTwice(t *testing.T) {
	c := &clock{now: t0}
	d := newTest(t, 16, c)
	firsts := map[int]bool{}
	created := map[int]time.Time{}
	origins := []string{"a", "a", "a", "a", "a", "a", "b", "b", "c", "d", "e"} // one origin busier than the rest
	seed := uint64(1)
	rnd := func(n int) int { seed = seed*6364136223846793005 + 1442695040888963407; return int(seed>>33) % n }
	for range 20000 {
		c.now = c.now.Add(time.Duration(rnd(200)) * time.Millisecond)
		k := rnd(500)
		at, ok := created[k]
		if !ok {
			at = c.now.Add(-time.Duration(rnd(5000)) * time.Millisecond)
			created[k] = at
		}
		if d.Observe(k, origins[k%len(origins)], at) == First {
			if firsts[k] {
				t.Fatalf("key %d was first twice", k)
			}
			firsts[k] = true
		}
	}
	if len(firsts) < 100 {
		t.Fatalf("only %d keys accepted: the test does not exercise the deduper", len(firsts))
	}
}

func TestStatsCountEachVerdict(t *testing.T) {
	c := &clock{now: t0}
	d := newTest(t, 1, c)
	d.Observe(1, "a", c.now)
	d.Observe(1, "a", c.now)
	d.Observe(2, "a", c.now.Add(-time.Hour))
	d.Observe(3, "a", c.now.Add(time.Hour))
	d.Observe(4, "a", c.now.Add(time.Second))
	want := Stats{Duplicates: 1, TooOld: 1, TooNew: 1, Evicted: 1}
	if got := d.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
}

func TestCheckDoesNotRecord(t *testing.T) {
	c := &clock{now: t0}
	d := newTest(t, 4, c)
	if d.Check(1, "a", c.now) != First || d.Check(1, "a", c.now) != First || d.Len() != 0 {
		t.Fatal("Check recorded the key")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Capacity: 0, Window: time.Minute},
		{Capacity: 1, Window: 0},
		{Capacity: 1, Window: time.Minute, Skew: -1},
	} {
		if _, err := New[int](cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func TestConcurrentObserveAcceptsEachKeyOnce(t *testing.T) {
	d, err := New[int](DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var firsts atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range 1000 {
				if d.Observe(k, "a", now) == First {
					firsts.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if firsts.Load() != 1000 || d.Duplicates() != 7000 {
		t.Fatalf("firsts %d duplicates %d, want 1000 and 7000", firsts.Load(), d.Duplicates())
	}
}

func BenchmarkObserve(b *testing.B) {
	d, _ := New[[32]byte](DefaultConfig())
	now := time.Now()
	var k [32]byte
	for i := 0; b.Loop(); i++ {
		k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
		d.Observe(k, "a", now)
	}
}

// The documented memory, measured on the heap: a full deduper of the
// default capacity holds about 180 bytes per key (11 MiB) when few origins
// sign; about 570 (35 MiB) at worst, every key of its own origin and as
// many origins again holding only a floor (36-byte origins, ed25519 keys).
func TestDefaultCapacityMemory(t *testing.T) {
	tests := []struct {
		name     string
		keys     int
		originOf func(i int) string
		most     int64 // bytes a remembered key
	}{
		{"one origin", DefaultCapacity, func(int) string { return "a" }, 200},
		{"every key its own origin, and as many floors", 2 * DefaultCapacity, func(i int) string { return fmt.Sprintf("%036d", i) }, 700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			d, err := New[[32]byte](DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			var k [32]byte
			for i := range tt.keys {
				k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
				d.Observe(k, tt.originOf(i), now.Add(time.Duration(i)*time.Microsecond))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perKey := int64(after.HeapAlloc-before.HeapAlloc) / int64(d.Len())
			t.Logf("%d keys, %d origins: %d bytes a key, %.1f MiB", d.Len(), len(d.origins), perKey, float64(perKey*int64(d.Len()))/(1<<20))
			if d.Len() != DefaultCapacity || perKey > tt.most {
				t.Fatalf("%d keys at %d bytes each; the documented bound is %d", d.Len(), perKey, tt.most)
			}
			runtime.KeepAlive(d)
		})
	}
}
