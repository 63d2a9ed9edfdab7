// Package sim measures broadcast strategies: RainTree alone, gossip alone
// and the two together, under down and silent validators.
//
// It has two modes. [RunPlan] drives the pure RainTree planner
// (raintree.Broadcast) over up to millions of validators without any hosts:
// it predicts coverage, message counts and hop depth, not time.
// [RunNetwork] builds, for each strategy, a fresh in-process network of real
// p2p.Module instances over libp2p mocknet hosts, sends broadcasts and
// measures delivery, latency and bytes on the wire.
//
// Both return a [Result] whose JSON form is the same, with the fields a mode
// cannot measure left null, so the two can be compared and plotted by the
// same tools ([WriteHTML], [Result.WriteTable]).
//
// This package is a measuring instrument for the command line and tests; it
// is not part of the node and nothing in p2p depends on it.
package sim
