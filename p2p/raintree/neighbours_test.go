package raintree

import (
	"fmt"
	"slices"
	"testing"
)

// targetsOverEveryOrigin plans a broadcast from every origin and collects,
// per node, whom it sent payload to: the definition Offsets shortcuts.
func targetsOverEveryOrigin(mode Mode, n int, perHops ...int) []map[int]bool {
	out := make([]map[int]bool, n)
	for i := range out {
		out[i] = map[int]bool{}
	}
	if len(perHops) == 0 {
		perHops = []int{1}
	}
	for _, p := range perHops {
		for o := range n {
			for _, e := range Broadcast(n, o, mode, Options{RecordEdges: true, LevelsPerHop: p}).Edges {
				out[e.From][e.To] = true
			}
		}
	}
	return out
}

func TestNeighboursMatchPlansFromEveryOrigin(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 5, 8, 9, 10, 26, 27, 28, 40, 81, 100, 123, 244, 365}
	perHops := [][]int{{1}, {1, 2}, {3}}
	for i, mode := range []Mode{ModeCover, ModeReference, ModeCover, ModeCover} {
		ph := perHops[max(i-1, 0)]
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%s/levels per hop %v/n=%d", mode, ph, n), func(t *testing.T) {
				brute := targetsOverEveryOrigin(mode, n, ph...)
				senders := make([]map[int]bool, n)
				for i := range senders {
					senders[i] = map[int]bool{}
				}
				for from, tos := range brute {
					for to := range tos {
						senders[to][from] = true
					}
				}
				for self := range n {
					nb := NeighboursOf(mode, n, self, ph...)
					if want := sortedKeys(brute[self]); !slices.Equal(nb.Targets, want) {
						t.Fatalf("node %d targets %v, planning every origin gives %v", self, nb.Targets, want)
					}
					if want := sortedKeys(senders[self]); !slices.Equal(nb.Senders, want) {
						t.Fatalf("node %d senders %v, planning every origin gives %v", self, nb.Senders, want)
					}
					if slices.Contains(nb.All(), self) {
						t.Fatalf("node %d is its own neighbour", self)
					}
				}
			})
		}
	}
}

func sortedKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// The counts issue 10 measured by planning every origin, and the bound
// 3·⌈log₃ N⌉ its targets set for 10^6 validators.
func TestOutgoingNeighboursStayLogarithmic(t *testing.T) {
	tests := []struct {
		mode      Mode
		n         int
		targets   int // distinct targets per validator
		neighbour int // targets and senders together; 0: not checked
	}{
		{ModeCover, 100, 11, 0},
		{ModeReference, 100, 10, 0},
		{ModeCover, 1_000, 20, 40},
		{ModeReference, 1_000, 14, 0},
		{ModeCover, 3_000, 22, 42},
		{ModeReference, 3_000, 16, 0},
	}
	for _, tt := range tests {
		nb := NeighboursOf(tt.mode, tt.n, 7)
		if len(nb.Targets) != tt.targets {
			t.Errorf("%s n=%d: %d targets, want %d", tt.mode, tt.n, len(nb.Targets), tt.targets)
		}
		if tt.neighbour > 0 && len(nb.All()) != tt.neighbour {
			t.Errorf("%s n=%d: %d neighbours, want %d", tt.mode, tt.n, len(nb.All()), tt.neighbour)
		}
	}
	for _, mode := range []Mode{ModeCover, ModeReference} {
		for _, n := range []int{10_000, 100_000, 1_000_000} {
			if got, bound := len(Offsets(mode, n)), 3*Levels(n); got > bound {
				t.Errorf("%s n=%d: %d distinct targets, above 3·⌈log₃ N⌉ = %d", mode, n, got, bound)
			}
		}
	}
	// Two levels per hop for small messages, one for large: each hop fans
	// out to up to 8, about twice the targets of the ternary tree alone.
	for _, tt := range []struct{ n, targets, neighbours int }{
		{100, 19, 34}, {300, 25, 48}, {1_000, 37, 70}, {3_000, 42, 82}, {1_000_000, 73, 142},
	} {
		nb := NeighboursOf(ModeCover, tt.n, 7, 1, DefaultLevelsPerHop)
		if len(nb.Targets) != tt.targets || len(nb.All()) != tt.neighbours {
			t.Errorf("cover n=%d with 1 and %d levels per hop: %d targets and %d neighbours, want %d and %d",
				tt.n, DefaultLevelsPerHop, len(nb.Targets), len(nb.All()), tt.targets, tt.neighbours)
		}
		if bound := 6 * Levels(tt.n); len(nb.Targets) > bound {
			t.Errorf("cover n=%d: %d targets, above 6·⌈log₃ N⌉ = %d", tt.n, len(nb.Targets), bound)
		}
	}
}

func TestNeighboursOfTinySets(t *testing.T) {
	tests := []struct {
		name string
		mode Mode
		n    int
		self int
		want Neighbours
	}{
		{"a lone validator has none", ModeCover, 1, 0, Neighbours{}},
		{"two validators send to each other", ModeCover, 2, 0, Neighbours{Targets: []int{1}, Senders: []int{1}}},
		{"three: cover sends to both others", ModeCover, 3, 1, Neighbours{Targets: []int{0, 2}, Senders: []int{0, 2}}},
		{"three: reference sends to both others", ModeReference, 3, 2, Neighbours{Targets: []int{0, 1}, Senders: []int{0, 1}}},
		{"self index wraps", ModeCover, 3, 4, Neighbours{Targets: []int{0, 2}, Senders: []int{0, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := NeighboursOf(tt.mode, tt.n, tt.self)
			if !slices.Equal(got.Targets, tt.want.Targets) || !slices.Equal(got.Senders, tt.want.Senders) {
				t.Errorf("NeighboursOf(%s, %d, %d) = %+v, want %+v", tt.mode, tt.n, tt.self, got, tt.want)
			}
		})
	}
}

func BenchmarkOffsetsMillion(b *testing.B) {
	for b.Loop() {
		Offsets(ModeCover, 1_000_000)
	}
}
