// Package sim measures broadcast strategies: RainTree alone, gossip alone
// and the two together, under down and silent validators.
//
// It has two modes. [RunPlan] drives the pure RainTree planner
// (raintree.Broadcast) over up to millions of validators without any hosts:
// it predicts coverage, message counts and hop depth, not time.
// [RunNetwork] builds, for each strategy, a fresh in-process network of real
// p2p.Module instances over libp2p mocknet hosts, sends broadcasts and
// measures delivery, latency and bytes on the wire. Its times are wall
// clock: two cores drive every node, so they grow with CPU load.
//
// With [NetConfig.Virtual] set, RunNetwork runs the same Module on real
// QUIC hosts over go-libp2p's simulated network (x/simlibp2p on
// marcopolo/simnet), with per-pair latency and per-node bandwidth, inside a
// testing/synctest bubble: time advances only while every goroutine waits,
// so coverage times come from the links, not the CPU. synctest needs a
// *testing.T, so its entry point is a test:
//
//	go test ./sim -run '^TestVirtualSim$' -count=1 -timeout 0 -args -validators 60 -fullnodes 40 -json /abs/out.json
//
// All return a [Result] whose JSON form is the same (its time_base says
// which clock the times come from), with the fields a mode
// cannot measure left null, so the two can be compared and plotted by the
// same tools ([WriteHTML], [Result.WriteTable]).
//
// This package is a measuring instrument for the command line and tests; it
// is not part of the node and nothing in p2p depends on it.
package sim
