// Package p2p is the rainp2p module an application embeds: one Module per
// node owns the libp2p host, the RainTree router (validators only), the
// background gossip router (everyone) and the nonce deduper, and routes each
// Send and Broadcast to the right router.
//
// Routing: unicast between two validators goes over RainTree's unicast; any
// other pair uses the background router's unicast. A validator's broadcast
// goes out on RainTree and on the background router; a full node's on the
// background router only. Every delivered envelope passes the deduper first,
// so the application sees it exactly once.
//
// The package is not a consensus engine: it moves envelopes and keeps the
// routers in step with the validator set the application supplies.
package p2p
