package raintree

import "slices"

// Offsets lists, sorted, the distinct ring offsets (recipient index minus
// sender index, modulo n) of the payload messages of a fault-free
// broadcast in mode over n validators, united over the given levels per
// hop (see CoverTargets; none means 1). A router that sends small
// messages wider than large ones needs both.
//
// Every node rotates the ring so that it stands first, so a plan from any
// origin is the plan from origin 0 shifted round the ring: the targets of a
// node over broadcasts from every origin are its index plus these offsets,
// and its senders are its index minus them. Computing them from one origin
// costs O(log n), not the O(n²) of planning every origin: in cover mode a
// node's targets depend only on the length of its span and its level, and
// a level holds at most a few distinct span lengths; in reference mode
// they depend only on the level.
//
// Re-delegation after a missing ACK reaches further validators; those are
// not neighbours and are dialled on demand.
func Offsets(mode Mode, n int, perHops ...int) []int {
	if n <= 1 {
		return nil
	}
	if len(perHops) == 0 {
		perHops = []int{1}
	}
	seen := map[int]bool{}
	switch mode {
	case ModeReference:
		for _, t := range appendReference(nil, n, 0, Levels(n)) {
			seen[t.Index] = true
		}
	case ModeCover:
		type state struct{ length, top, perHop int }
		visited := map[state]bool{}
		var walk func(s state)
		walk = func(s state) {
			if visited[s] {
				return
			}
			visited[s] = true
			for _, t := range appendCover(nil, n, Span{Start: 0, Len: s.length}, s.top, s.perHop) {
				seen[t.Index] = true
				walk(state{t.Span.Len, t.Level - 1, s.perHop})
			}
		}
		for _, p := range perHops {
			walk(state{n, Levels(n), max(p, 1)})
		}
	default:
		return nil
	}
	out := make([]int, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Neighbours are the validators self exchanges RainTree payload with in
// fault-free broadcasts from any origin, as sorted set indexes without
// self: Targets (whom self sends to) and Senders (who send to self). A
// validator keeps long-lived connections to their union.
type Neighbours struct {
	Targets, Senders []int
}

// NeighboursOf returns the neighbours of the validator at index self of a
// set of n in mode, for the given levels per hop (see Offsets).
func NeighboursOf(mode Mode, n, self int, perHops ...int) Neighbours {
	var nb Neighbours
	if n <= 1 {
		return nb
	}
	self = mod(self, n)
	for _, d := range Offsets(mode, n, perHops...) {
		nb.Targets = append(nb.Targets, (self+d)%n)
		nb.Senders = append(nb.Senders, mod(self-d, n))
	}
	slices.Sort(nb.Targets)
	slices.Sort(nb.Senders)
	return nb
}

// All is the sorted union of Targets and Senders.
func (nb Neighbours) All() []int {
	all := append(slices.Clone(nb.Targets), nb.Senders...)
	slices.Sort(all)
	return slices.Compact(all)
}
