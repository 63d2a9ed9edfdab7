//go:build race

package sim

// raceEnabled: the race detector slows mocknet networks down about tenfold
// and its runtime gives up (a ThreadSanitizer CHECK) under the goroutine
// churn of the larger ones, so such tests shrink under it.
const raceEnabled = true
