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
// Inbound frames are untrusted: a frame's memory grows in 64 KiB chunks as
// its bytes arrive (never at the size its header declares) and is reserved
// in the stream's resource-manager scope; a frame must arrive within
// FrameTimeout of its header; malformed or stalled frames reset their
// stream and count as strikes, and MalformedLimit strikes close the peer's
// connections (see docs/SECURITY.md).
//
// Routers (RainTree, background gossip) embed a Router with their own
// protocol ID. This package is for point-to-point delivery only: it does not
// acknowledge, deduplicate, retry beyond one reconnect, fan out, or persist
// messages. A frame that was written to a stream whose peer vanished at that
// moment can be lost; callers that need delivery guarantees must add
// acknowledgements above this layer.
package unicast
