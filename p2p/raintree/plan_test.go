package raintree

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestLevels(t *testing.T) {
	tests := []struct{ n, want int }{
		{0, 0}, {1, 0}, {2, 1}, {3, 1}, {4, 2}, {9, 2}, {10, 3}, {27, 3}, {28, 4},
		{1_000_000, 13}, {1_594_323, 13}, {1_594_324, 14},
	}
	for _, tt := range tests {
		if got := Levels(tt.n); got != tt.want {
			t.Errorf("Levels(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr error
	}{
		{"cover", ModeCover, nil},
		{"reference", ModeReference, nil},
		{" Reference ", ModeReference, nil},
		{"", "", ErrUnknownMode},
		{"gossip", "", ErrUnknownMode},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParseMode(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestWindowIsExactFloor(t *testing.T) {
	tests := []struct{ n, k, want int }{
		{9, 0, 9}, {9, 1, 6}, {9, 2, 4}, {8, 1, 5}, {1_000_000, 13, 5_138}, {27, 3, 8},
	}
	for _, tt := range tests {
		if got := window(tt.n, tt.k); got != tt.want {
			t.Errorf("window(%d, %d) = %d, want %d", tt.n, tt.k, got, tt.want)
		}
	}
}

// readsWrites is a node's published (network reads, network writes).
type readsWrites struct{ reads, writes int }

func TestReferenceMatchesPublishedVectors(t *testing.T) {
	every := func(n int, rw readsWrites, except map[int]readsWrites) map[int]readsWrites {
		m := map[int]readsWrites{}
		for id := 1; id <= n; id++ {
			m[id] = rw
		}
		for id, v := range except {
			m[id] = v
		}
		return m
	}
	tests := []struct {
		name string
		n    int
		want map[int]readsWrites // by 1-based id, origin id 1
	}{
		{"one validator sends nothing", 1, map[int]readsWrites{1: {0, 0}}},
		{"two validators: one unicast", 2, map[int]readsWrites{1: {0, 1}, 2: {1, 0}}},
		{"three validators: origin sends to both", 3, map[int]readsWrites{1: {0, 2}, 2: {1, 0}, 3: {1, 0}}},
		{"four validators: duplicates at 2 and 3", 4, map[int]readsWrites{1: {0, 3}, 2: {2, 1}, 3: {2, 1}, 4: {1, 0}}},
		{"nine validators: two level-1 relays", 9, every(9, readsWrites{1, 0}, map[int]readsWrites{1: {0, 4}, 4: {1, 2}, 7: {1, 2}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Broadcast(tt.n, 0, ModeReference, Options{})
			for id, want := range tt.want {
				got := readsWrites{p.Reads[id-1], p.Writes[id-1]}
				if got != want {
					t.Errorf("id %d: (reads, writes) = %v, want %v", id, got, want)
				}
			}
		})
	}
}

func TestEveryOriginatorSeesTheSameRotatedPlan(t *testing.T) {
	for _, mode := range []Mode{ModeReference, ModeCover} {
		for n := 1; n <= 40; n++ {
			base := Broadcast(n, 0, mode, Options{})
			for origin := 1; origin < n; origin++ {
				p := Broadcast(n, origin, mode, Options{})
				for i := range n {
					j := (i + origin) % n
					if p.Reads[j] != base.Reads[i] || p.Writes[j] != base.Writes[i] {
						t.Fatalf("%s n=%d origin=%d: node %d has (%d, %d), origin 0's node %d has (%d, %d)",
							mode, n, origin, j, p.Reads[j], p.Writes[j], i, base.Reads[i], base.Writes[i])
					}
				}
				if p.Messages != base.Messages || p.LastDeliveryHop != base.LastDeliveryHop || len(p.Uncovered) != len(base.Uncovered) {
					t.Fatalf("%s n=%d origin=%d: summary differs from origin 0", mode, n, origin)
				}
			}
		}
	}
}

func TestReferenceLeavesPublishedHoles(t *testing.T) {
	tests := []struct{ n, uncovered int }{
		{8, 2}, {24, 9}, {1000, 85},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("n=", tt.n), func(t *testing.T) {
			p := Broadcast(tt.n, 0, ModeReference, Options{})
			if len(p.Uncovered) != tt.uncovered {
				t.Errorf("uncovered = %d %v, want %d", len(p.Uncovered), p.Uncovered, tt.uncovered)
			}
		})
	}
}

func TestReferenceMissesIDsFiveAndEightOfEight(t *testing.T) {
	p := Broadcast(8, 0, ModeReference, Options{})
	if want := []int{4, 7}; !slices.Equal(p.Uncovered, want) {
		t.Errorf("uncovered = %v, want %v (ids 5 and 8)", p.Uncovered, want)
	}
}

// checkCover asserts the cover guarantees of a fault-free plan.
func checkCover(t testing.TB, n, origin int) {
	t.Helper()
	checkWideCover(t, n, origin, 1)
}

// checkWideCover checks a fault-free cover broadcast run perHop levels per
// hop: everyone once, n-1 messages, at most ⌈Levels/perHop⌉ hops.
func checkWideCover(t testing.TB, n, origin, perHop int) {
	t.Helper()
	p := Broadcast(n, origin, ModeCover, Options{LevelsPerHop: perHop})
	if len(p.Uncovered) != 0 {
		t.Fatalf("n=%d origin=%d: uncovered %v", n, origin, p.Uncovered)
	}
	if p.Messages != n-1 {
		t.Fatalf("n=%d origin=%d: %d messages, want %d", n, origin, p.Messages, n-1)
	}
	if hops := (Levels(n) + perHop - 1) / perHop; p.LastDeliveryHop > hops {
		t.Fatalf("n=%d origin=%d, %d levels per hop: last delivery hop %d > %d", n, origin, perHop, p.LastDeliveryHop, hops)
	}
	for i, r := range p.Reads {
		if want := 1; i != origin && r != want {
			t.Fatalf("n=%d origin=%d: node %d read %d times, want once", n, origin, i, r)
		}
	}
	if p.Reads[origin] != 0 {
		t.Fatalf("n=%d origin=%d: origin read its own broadcast", n, origin)
	}
}

func TestCoverReachesEveryoneOnceWithinLevels(t *testing.T) {
	t.Run("every size up to 2000", func(t *testing.T) {
		for n := 1; n <= 2000; n++ {
			checkCover(t, n, 0)
		}
	})
	t.Run("every origin up to 60", func(t *testing.T) {
		for n := 1; n <= 60; n++ {
			for origin := range n {
				checkCover(t, n, origin)
			}
		}
	})
	t.Run("powers of three and neighbours", func(t *testing.T) {
		for p := 3; p <= 531_441; p *= 3 {
			for _, n := range []int{p - 1, p, p + 1} {
				if n > 200_000 && testing.Short() {
					continue
				}
				checkCover(t, n, n/2)
			}
		}
	})
	t.Run("large sizes", func(t *testing.T) {
		for _, n := range []int{100_000, 1_000_000} {
			checkCover(t, n, 12_345)
		}
	})
}

func TestCoverStepsUseEveryLevelLikeRainTree(t *testing.T) {
	// The originator of 27 sends two messages per level, like RainTree does.
	got := OriginTargets(ModeCover, 27, 0, 1)
	want := []Target{
		{9, 3, Span{9, 9}}, {18, 3, Span{18, 9}},
		{3, 2, Span{3, 3}}, {6, 2, Span{6, 3}},
		{1, 1, Span{1, 1}}, {2, 1, Span{2, 1}},
	}
	if !slices.Equal(got, want) {
		t.Errorf("OriginTargets(cover, 27, 0) =\n%v\nwant\n%v", got, want)
	}
}

func TestWideHopsReachEveryoneOnceInFewerHops(t *testing.T) {
	for perHop := 2; perHop <= MaxLevelsPerHop; perHop++ {
		t.Run(fmt.Sprintf("%d levels per hop", perHop), func(t *testing.T) {
			for n := 1; n <= 800; n++ {
				checkWideCover(t, n, n/3, perHop)
			}
			for _, n := range []int{2186, 2187, 2188, 100_000} {
				checkWideCover(t, n, 17, perHop)
			}
		})
	}
	t.Run("a full tree takes exactly ⌈levels/perHop⌉ hops", func(t *testing.T) {
		for _, tt := range []struct{ n, perHop, hops int }{
			{729, 1, 6}, {729, 2, 3}, {729, 3, 2}, {729, 4, 2}, {2187, 2, 4}, {60, 2, 2}, {300, 2, 3},
		} {
			if got := Broadcast(tt.n, 0, ModeCover, Options{LevelsPerHop: tt.perHop}).LastDeliveryHop; got != tt.hops {
				t.Errorf("n=%d, %d levels per hop: last delivery at hop %d, want %d", tt.n, tt.perHop, got, tt.hops)
			}
		}
	})
}

func TestTwoLevelsPerHopSendEightPartsBiggestFirst(t *testing.T) {
	got := OriginTargets(ModeCover, 27, 0, 2)
	var want []Target
	for i := 3; i < 27; i += 3 {
		want = append(want, Target{i, 2, Span{i, 3}})
	}
	want = append(want, Target{1, 1, Span{1, 1}}, Target{2, 1, Span{2, 1}})
	if !slices.Equal(got, want) {
		t.Errorf("OriginTargets(cover, 27, 0, 2) =\n%v\nwant\n%v", got, want)
	}
	// Uneven parts: the biggest go first, whatever their place on the ring.
	got = CoverTargets(20, Span{Start: 0, Len: 20}, 4, 2)
	for i := 1; i < len(got); i++ {
		if got[i].Span.Len > got[i-1].Span.Len {
			t.Fatalf("targets not biggest first: %v", got)
		}
	}
}

func TestCoverSpansWrapAroundTheRing(t *testing.T) {
	got := CoverTargets(10, Span{Start: 8, Len: 4}, 3, 1)
	want := []Target{{0, 2, Span{0, 1}}, {1, 2, Span{1, 1}}, {9, 1, Span{9, 1}}}
	if !slices.Equal(got, want) {
		t.Errorf("CoverTargets = %v, want %v", got, want)
	}
}

func TestOriginTargetsMatchTheReceiverRule(t *testing.T) {
	for n := 1; n <= 100; n++ {
		top := Levels(n) + 1
		for p := 1; p <= MaxLevelsPerHop; p++ {
			if got, want := OriginTargets(ModeReference, n, 3%n, p), ReferenceTargets(n, 3%n, top); !slices.Equal(got, want) {
				t.Fatalf("n=%d reference: origin %v, receiver at top level %v", n, got, want)
			}
			if got, want := OriginTargets(ModeCover, n, 3%n, p), CoverTargets(n, Span{3 % n, n}, top, p); !slices.Equal(got, want) {
				t.Fatalf("n=%d cover, %d levels per hop: origin %v, receiver at top level %v", n, p, got, want)
			}
		}
	}
}

func TestReferenceLevelOneReceiverSendsNothing(t *testing.T) {
	if got := ReferenceTargets(1000, 5, 1); len(got) != 0 {
		t.Errorf("ReferenceTargets at level 1 = %v, want none", got)
	}
	if got := CoverTargets(1000, Span{5, 1}, 4, 1); len(got) != 0 {
		t.Errorf("CoverTargets for a span of one = %v, want none", got)
	}
}

func TestRedelegate(t *testing.T) {
	tests := []struct {
		name   string
		in     Target
		want   Target
		wantOK bool
	}{
		{"moves to the next validator of the span", Target{4, 2, Span{4, 3}}, Target{5, 2, Span{5, 2}}, true},
		{"wraps around the ring", Target{9, 1, Span{9, 2}}, Target{0, 1, Span{0, 1}}, true},
		{"gives up when the span is used up", Target{4, 1, Span{4, 1}}, Target{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Redelegate(10, tt.in)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Redelegate(%v) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func randomDown(r *rand.Rand, n, origin int, frac float64) []bool {
	down := make([]bool, n)
	for i := range down {
		down[i] = i != origin && r.Float64() < frac
	}
	return down
}

func TestACKCoversEveryLiveNodeAroundDownNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		n := 1 + r.IntN(400)
		origin := r.IntN(n)
		down := randomDown(r, n, origin, []float64{0.05, 0.2, 0.5}[trial%3])
		p := Broadcast(n, origin, ModeCover, Options{Down: down, ACK: true, LevelsPerHop: 1 + trial%3})
		if len(p.Uncovered) != 0 {
			t.Fatalf("trial %d n=%d origin=%d: uncovered %v", trial, n, origin, p.Uncovered)
		}
		// Down nodes are still sent to once each, then skipped.
		if want := n - 1; p.Messages != want {
			t.Fatalf("trial %d n=%d: %d messages, want %d", trial, n, p.Messages, want)
		}
	}
}

func TestWithoutACKADownNodeLosesItsSpan(t *testing.T) {
	down := make([]bool, 27)
	down[9] = true // heads 10..18
	p := Broadcast(27, 0, ModeCover, Options{Down: down})
	if want := []int{10, 11, 12, 13, 14, 15, 16, 17}; !slices.Equal(p.Uncovered, want) {
		t.Errorf("uncovered = %v, want %v", p.Uncovered, want)
	}
	p = Broadcast(27, 0, ModeCover, Options{Down: down, ACK: true})
	if len(p.Uncovered) != 0 {
		t.Errorf("with ACK: uncovered = %v, want none", p.Uncovered)
	}
}

func TestWithoutACKRandomDownSetsMiss(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	misses := 0
	for range 100 {
		n := 50 + r.IntN(200)
		p := Broadcast(n, 0, ModeCover, Options{Down: randomDown(r, n, 0, 0.1)})
		misses += len(p.Uncovered)
	}
	if misses == 0 {
		t.Error("no live node was missed without ACKs; expected down relays to lose their spans")
	}
}

func TestSilentNodesAreRedelegatedOnlyWhenForwardingIsChecked(t *testing.T) {
	silent := make([]bool, 27)
	silent[9] = true
	p := Broadcast(27, 0, ModeCover, Options{Silent: silent, ACK: true})
	if p.Reads[9] != 1 {
		t.Errorf("silent node read %d times, want 1", p.Reads[9])
	}
	if len(p.Uncovered) != 8 {
		t.Errorf("without forwarding checks, uncovered = %v, want the 8 others of its span", p.Uncovered)
	}
	checked := Broadcast(27, 0, ModeCover, Options{Silent: silent, ACK: true, CheckForwarding: true})
	want := []Edge{{From: 0, To: 10, Level: 3, Hop: 1, Span: Span{Start: 10, Len: 8}, Redelegated: true}}
	if len(checked.Uncovered) != 0 || checked.Reads[9] != 1 || !slices.Equal(checked.Redelegations, want) {
		t.Errorf("with forwarding checks: uncovered %v, silent node read %d times, re-delegations %v; want none, 1, %v",
			checked.Uncovered, checked.Reads[9], checked.Redelegations, want)
	}
	if checked.Messages != 26 || slices.Max(checked.Reads) != 1 {
		t.Errorf("with forwarding checks: %d messages, at most %d reads per node; want 26, one each (the re-delegation replaces the frame 9 sat on)",
			checked.Messages, slices.Max(checked.Reads))
	}
	// A silent leaf has nothing to forward: nothing is re-delegated.
	leaf := make([]bool, 27)
	leaf[1] = true
	if p := Broadcast(27, 0, ModeCover, Options{Silent: leaf, ACK: true, CheckForwarding: true}); len(p.Redelegations) != 0 || len(p.Uncovered) != 0 {
		t.Errorf("a silent leaf: re-delegations %v, uncovered %v; want none", p.Redelegations, p.Uncovered)
	}
}

func TestMaxRetriesBoundsRedelegation(t *testing.T) {
	down := make([]bool, 27)
	down[9], down[10], down[11] = true, true, true
	tests := []struct {
		name       string
		maxRetries int
		uncovered  int
	}{
		{"unlimited walks past every down node", 0, 0},
		{"three retries reach the first live node", 3, 0},
		{"two retries give up on the span", 2, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Broadcast(27, 0, ModeCover, Options{Down: down, ACK: true, MaxRetries: tt.maxRetries})
			if len(p.Uncovered) != tt.uncovered {
				t.Errorf("uncovered = %v, want %d nodes", p.Uncovered, tt.uncovered)
			}
		})
	}
}

func TestDownOriginSendsNothing(t *testing.T) {
	down := make([]bool, 5)
	down[2] = true
	p := Broadcast(5, 2, ModeCover, Options{Down: down, ACK: true})
	if p.Messages != 0 || len(p.Uncovered) != 4 {
		t.Errorf("messages %d, uncovered %v; want 0 and the 4 others", p.Messages, p.Uncovered)
	}
}

func TestEdgesAgreeWithCounters(t *testing.T) {
	for _, mode := range []Mode{ModeReference, ModeCover} {
		p := Broadcast(100, 7, mode, Options{RecordEdges: true})
		if len(p.Edges) != p.Messages {
			t.Fatalf("%s: %d edges, %d messages", mode, len(p.Edges), p.Messages)
		}
		writes := make([]int, p.Size)
		for _, e := range p.Edges {
			writes[e.From]++
		}
		if !slices.Equal(writes, p.Writes) {
			t.Errorf("%s: writes from edges differ from Writes", mode)
		}
	}
}

func TestWriteTreeMatchesGolden(t *testing.T) {
	for _, mode := range []Mode{ModeCover, ModeReference} {
		t.Run(string(mode), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Broadcast(27, 0, mode, Options{RecordEdges: true}).WriteTree(&buf); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", fmt.Sprintf("plan-27-origin-1-%s.golden", mode))
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("tree differs from %s (run with -update if intended):\n%s", golden, buf.String())
			}
		})
	}
}

func FuzzCoverPlan(f *testing.F) {
	f.Add(1, 0)
	f.Add(8, 3)
	f.Add(28, 27)
	f.Add(729, 100)
	f.Fuzz(func(t *testing.T, n, origin int) {
		n = 1 + mod(n, 20_000)
		checkCover(t, n, mod(origin, n))
	})
}

func BenchmarkBroadcastCover1e6(b *testing.B) {
	for b.Loop() {
		Broadcast(1_000_000, 0, ModeCover, Options{})
	}
}

func BenchmarkBroadcastReference1e5(b *testing.B) {
	for b.Loop() {
		Broadcast(100_000, 0, ModeReference, Options{})
	}
}

// walkHandover delivers a full node's handover (HandoverTargets, each head
// planning its part by PartLevel as a relaying validator does) and returns
// how often each validator got it and the hop of the last delivery.
func walkHandover(n, start, perHop int) (reads, hops []int, last int) {
	reads, hops = make([]int, n), make([]int, n)
	type frame struct {
		t   Target
		hop int
	}
	var queue []frame
	for _, t := range HandoverTargets(n, start, perHop) {
		queue = append(queue, frame{Target{t.Index, PartLevel(t.Span.Len), t.Span}, 1})
	}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		reads[f.t.Index]++
		if hops[f.t.Index] == 0 {
			hops[f.t.Index] = f.hop
		}
		last = max(last, f.hop)
		for _, t := range CoverTargets(n, f.t.Span, f.t.Level, perHop) {
			queue = append(queue, frame{t, f.hop + 1})
		}
	}
	return reads, hops, last
}

func TestAFullNodesHandoverReachesEveryValidatorOnceAHopSoonerThanThroughAParent(t *testing.T) {
	for _, perHop := range []int{1, 2} {
		for n := 1; n <= 800; n++ {
			start := n / 3
			reads, _, last := walkHandover(n, start, perHop)
			for i, r := range reads {
				if r != 1 {
					t.Fatalf("n=%d, %d levels per hop: validator %d read the handover %d times", n, perHop, i, r)
				}
			}
			origin := Broadcast(n, start, ModeCover, Options{LevelsPerHop: perHop}).LastDeliveryHop
			// Never deeper than the hop to a parent and the parent's tree.
			if n > 1 && last > origin+1 {
				t.Fatalf("n=%d, %d levels per hop: last delivery at hop %d, a validator's own at %d", n, perHop, last, origin)
			}
			// Two levels a hop: the hop to the heads is the origin's first.
			if perHop == 2 && slices.Contains([]int{20, 60, 100, 180, 300, 600, 729}, n) && last != origin {
				t.Fatalf("n=%d: last delivery at hop %d, a validator's own at %d", n, last, origin)
			}
			if heads := len(HandoverTargets(n, start, perHop)); heads > 9 || perHop == 1 && heads > 3 {
				t.Fatalf("n=%d, %d levels per hop: %d heads", n, perHop, heads)
			}
		}
	}
}

func TestAHandoverSendsTheBiggestPartsFirstFromTheStart(t *testing.T) {
	got := HandoverTargets(60, 10, 2)
	if len(got) != 9 || !slices.ContainsFunc(got, func(t Target) bool { return t.Index == 10 && t.Span == Span{10, 7} }) {
		t.Fatalf("HandoverTargets(60, 10, 2) = %v: want nine parts, one of 7 headed by 10", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Span.Len > got[i-1].Span.Len {
			t.Fatalf("parts not biggest first: %v", got)
		}
	}
	if got := len(HandoverTargets(729, 0, MaxLevelsPerHop)); got != 9 {
		t.Errorf("a handover with %d levels per hop has %d parts, want 9: it splits at most two levels deep", MaxLevelsPerHop, got)
	}
	if got := HandoverTargets(0, 0, 2); got != nil {
		t.Errorf("HandoverTargets of an empty set = %v, want none", got)
	}
}

func TestHopsAreTheHopsABroadcastReachesEachValidatorAt(t *testing.T) {
	for _, perHop := range []int{1, 2, 3} {
		for n := 1; n <= 400; n++ {
			root := n / 2
			p := Broadcast(n, root, ModeCover, Options{LevelsPerHop: perHop, RecordEdges: true})
			want := make([]int, n)
			for _, e := range p.Edges {
				if want[e.To] == 0 {
					want[e.To] = e.Hop
				}
			}
			for v := range n {
				if got := Hops(n, v-root, perHop); got != want[v] {
					t.Fatalf("n=%d, %d levels per hop: Hops(offset %d) = %d, the broadcast reached it at hop %d", n, perHop, v-root, got, want[v])
				}
			}
			if got := TreeHops(n, perHop); got != p.LastDeliveryHop {
				t.Fatalf("n=%d, %d levels per hop: TreeHops = %d, the broadcast's last delivery was at hop %d", n, perHop, got, p.LastDeliveryHop)
			}
		}
	}
}

func TestHandoverHopsAreTheHopsAHandoverReachesEachValidatorAt(t *testing.T) {
	for _, perHop := range []int{1, 2} {
		for n := 1; n <= 400; n++ {
			start := n / 3
			_, hops, last := walkHandover(n, start, perHop)
			for v := range n {
				if hop := HandoverHops(n, v-start, perHop); hop != hops[v] {
					t.Fatalf("n=%d, %d levels per hop: HandoverHops(offset %d) = %d; the handover reached it at hop %d",
						n, perHop, v-start, hop, hops[v])
				}
			}
			if got := HandoverTreeHops(n, perHop); got != last {
				t.Fatalf("n=%d, %d levels per hop: HandoverTreeHops = %d; the handover reached its last validator at hop %d", n, perHop, got, last)
			}
		}
	}
}
