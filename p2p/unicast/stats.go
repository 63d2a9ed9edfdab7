package unicast

import "sync/atomic"

// Stats is a snapshot of a Router's counters. Byte counts are payload bytes,
// without frame headers.
type Stats struct {
	FramesSent     uint64
	BytesSent      uint64
	FramesReceived uint64
	BytesReceived  uint64
	// SendErrors counts Sends that returned an error, of any kind.
	SendErrors uint64
	// DroppedOversizeIn counts inbound frames whose header exceeded
	// MaxMessageSize; each one reset its stream.
	DroppedOversizeIn uint64
	// DroppedOversizeOut counts Sends refused with ErrTooLarge.
	DroppedOversizeOut uint64
	// ProtocolErrors counts inbound streams reset for an empty, truncated
	// or badly prefixed frame, and outbound streams the peer wrote on.
	ProtocolErrors uint64
	// FrameTimeouts counts inbound frames not finished within FrameTimeout.
	FrameTimeouts uint64
	// DroppedNoMemory counts inbound frames whose memory the resource
	// manager refused; each one reset its stream.
	DroppedNoMemory uint64
	// Strikes counts malformed frames charged to their peer (oversized or
	// bad header, empty, stalled, or reported with Penalize); Penalized the
	// Penalize calls among them.
	Strikes, Penalized uint64
	// PeersDisconnected counts peers whose connections were closed for
	// reaching MalformedLimit.
	PeersDisconnected uint64
	// StrikesForgotten counts peers whose unexpired strikes were forgotten
	// to stay within MaxStrikeRecords.
	StrikesForgotten uint64
	// Reconnects counts outbound streams reopened because the previous one
	// to the same peer broke or was ended by the peer while a Send was
	// under way or before the Router forgot it (a peer whose stream ended
	// while idle is forgotten, and its next Send opens a fresh stream).
	Reconnects uint64
	// StreamsOpened counts outbound streams; StreamsAccepted inbound ones.
	StreamsOpened   uint64
	StreamsAccepted uint64
}

type counters struct {
	framesSent, bytesSent          atomic.Uint64
	framesReceived, bytesReceived  atomic.Uint64
	sendErrors                     atomic.Uint64
	droppedOversizeIn              atomic.Uint64
	droppedOversizeOut             atomic.Uint64
	protocolErrors                 atomic.Uint64
	frameTimeouts, droppedNoMemory atomic.Uint64
	strikes, penalized             atomic.Uint64
	peersDisconnected              atomic.Uint64
	reconnects                     atomic.Uint64
	streamsOpened, streamsAccepted atomic.Uint64
}

// Stats returns the current counters. Fields are read individually, so a
// snapshot taken under load is not atomic as a whole.
func (r *Router) Stats() Stats {
	return Stats{
		FramesSent:         r.c.framesSent.Load(),
		BytesSent:          r.c.bytesSent.Load(),
		FramesReceived:     r.c.framesReceived.Load(),
		BytesReceived:      r.c.bytesReceived.Load(),
		SendErrors:         r.c.sendErrors.Load(),
		DroppedOversizeIn:  r.c.droppedOversizeIn.Load(),
		DroppedOversizeOut: r.c.droppedOversizeOut.Load(),
		ProtocolErrors:     r.c.protocolErrors.Load(),
		FrameTimeouts:      r.c.frameTimeouts.Load(),
		DroppedNoMemory:    r.c.droppedNoMemory.Load(),
		Strikes:            r.c.strikes.Load(),
		Penalized:          r.c.penalized.Load(),
		PeersDisconnected:  r.c.peersDisconnected.Load(),
		StrikesForgotten:   r.strikes.forgotten.Load(),
		Reconnects:         r.c.reconnects.Load(),
		StreamsOpened:      r.c.streamsOpened.Load(),
		StreamsAccepted:    r.c.streamsAccepted.Load(),
	}
}
