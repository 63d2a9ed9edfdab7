// Package unicast sends direct, length-prefixed messages to a single peer
// over long-lived libp2p streams.
//
// A Router owns one protocol ID. For every destination peer it lazily opens
// one outbound stream and reuses it for all later sends, so the per-message
// cost is one frame write rather than a stream negotiation. Each frame is an
// unsigned varint length followed by that many payload bytes (see WriteFrame
// and ReadFrame). Inbound streams are read by one goroutine each and every
// frame is handed to the Handler in arrival order.
//
// Routers (RainTree, background gossip) embed a Router with their own
// protocol ID. This package is for point-to-point delivery only: it does not
// acknowledge, deduplicate, retry beyond one reconnect, fan out, or persist
// messages. A frame that was written to a stream whose peer vanished at that
// moment can be lost; callers that need delivery guarantees must add
// acknowledgements above this layer.
package unicast
