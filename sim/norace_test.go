//go:build !race

package sim

import "testing"

const raceEnabled = false

func skipVirtualUnderRace(*testing.T) {}
