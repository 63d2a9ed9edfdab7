package sim

import (
	"fmt"
	"math/rand/v2"
)

// faults marks which validators are down and which are silent; the two sets
// are disjoint.
type faults struct {
	down, silent []bool
	live         []int // indexes of validators that are not down
}

// chooseFaults picks down and silent validators uniformly at random with a
// partial Fisher–Yates shuffle.
func chooseFaults(rng *rand.Rand, n, down, silent int) faults {
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := range down + silent {
		j := i + rng.IntN(n-i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	f := faults{down: make([]bool, n), silent: make([]bool, n)}
	for _, i := range perm[:down] {
		f.down[i] = true
	}
	for _, i := range perm[down : down+silent] {
		f.silent[i] = true
	}
	f.live = make([]int, 0, n-down)
	for i, d := range f.down {
		if !d {
			f.live = append(f.live, i)
		}
	}
	return f
}

// checkCounts validates the node and fault counts shared by both modes.
func checkCounts(validators, down, silent, broadcasts int) error {
	switch {
	case validators < 1:
		return fmt.Errorf("%w: need at least 1 validator, got %d", ErrBadConfig, validators)
	case down < 0 || silent < 0:
		return fmt.Errorf("%w: down (%d) and silent (%d) validators must not be negative", ErrBadConfig, down, silent)
	case down+silent > validators:
		return fmt.Errorf("%w: %d down + %d silent validators exceed the %d validators", ErrBadConfig, down, silent, validators)
	case down == validators:
		return fmt.Errorf("%w: all %d validators are down; nobody can broadcast", ErrBadConfig, validators)
	case broadcasts < 1:
		return fmt.Errorf("%w: need at least 1 broadcast, got %d", ErrBadConfig, broadcasts)
	}
	return nil
}
