//go:build race

package sim

import "testing"

// raceEnabled: the race detector slows mocknet networks down about tenfold
// and its runtime gives up (a ThreadSanitizer CHECK) under the goroutine
// churn of the larger ones, so such tests shrink under it.
const raceEnabled = true

// skipVirtualUnderRace skips a virtual-time (synctest + simnet QUIC) test
// in a race build: Go 1.26.8's runtime crashes there (SIGSEGV in
// runtime.(*timer).maybeRunChan inside a synctest bubble, in a swarm dial
// worker's select), about once in six runs. .ci/run runs these tests
// without -race instead.
func skipVirtualUnderRace(t *testing.T) {
	t.Helper()
	t.Skip("virtual-time tests run without -race (see sim/race_test.go); .ci/run does so")
}
