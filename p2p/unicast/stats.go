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
	// ProtocolErrors counts inbound streams reset for an empty or truncated
	// frame.
	ProtocolErrors uint64
	// Reconnects counts outbound streams reopened because the previous one
	// to the same peer broke or was ended by the peer.
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
		Reconnects:         r.c.reconnects.Load(),
		StreamsOpened:      r.c.streamsOpened.Load(),
		StreamsAccepted:    r.c.streamsAccepted.Load(),
	}
}
