// Package raintree plans RainTree broadcasts: given the size of the sorted
// validator set, a node's own index and what it received (a level, and in
// cover mode a span of the ring), it says which validators that node must
// send to next.
//
// The planning (plan.go, neighbours.go) is pure: no I/O, no goroutines, no
// clocks. The [Router] sends frames, runs ACK timers and checks that heads
// forward large frames (router.go, acks.go, queues.go, uplink.go,
// forwarded.go); it calls the step functions ([OriginTargets],
// [ReferenceTargets], [CoverTargets], [Redelegate]). The `rainp2p tree`
// command and the simulator call [Broadcast], which drives the very same
// step functions over a whole network to predict coverage, message counts
// and per-node load.
//
// Two modes exist. [ModeReference] is the published RainTree rule, kept
// bit-for-bit so that its read/write counts can be compared with the paper,
// including its holes: some validators never receive in a fault-free network
// (N=8 misses 2). [ModeCover], the default, hands every recipient an explicit
// [Span] of the ring to cover, so every validator receives exactly once with
// N-1 messages and at most Levels(N) hops.
//
// The planning does not know about peers, addresses or wire formats;
// indexes are positions in the validator set sorted by address.
package raintree
