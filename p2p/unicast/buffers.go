package unicast

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
)

// chunkSize is the unit in which a frame's memory grows while its bytes
// arrive: a sender is charged for what it sent, rounded up to one chunk,
// never for what its header declared.
const chunkSize = 64 << 10

// chunkPool holds chunk buffers, so reading a large frame does not
// allocate and zero fresh memory for every 64 KiB.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// memory is the part of a resource-manager scope a frame is charged to:
// network.StreamScope in a router, nothing in ReadFrame.
type memory interface {
	ReserveMemory(size int, prio uint8) error
	ReleaseMemory(size int)
}

type noMemory struct{}

func (noMemory) ReserveMemory(int, uint8) error { return nil }
func (noMemory) ReleaseMemory(int)              {}

var _ memory = network.StreamScope(nil)

// framePools holds whole-frame buffers by size class, in chunkSize steps,
// so a frame of n bytes borrows at most n+chunkSize-1 bytes (no
// power-of-two rounding) and large frames reuse memory instead of
// allocating it per frame.
type framePools struct{ classes []sync.Pool }

func newFramePools(max int) *framePools {
	return &framePools{classes: make([]sync.Pool, max/chunkSize+2)}
}

func (p *framePools) get(n int) []byte {
	class := (n + chunkSize - 1) / chunkSize
	if class < len(p.classes) {
		if b, ok := p.classes[class].Get().(*[]byte); ok {
			return (*b)[:n]
		}
	}
	return make([]byte, n, class*chunkSize)
}

func (p *framePools) put(b []byte) {
	class := cap(b) / chunkSize
	if cap(b)%chunkSize == 0 && class < len(p.classes) {
		b = b[:0]
		p.classes[class].Put(&b)
	}
}

// frame is one frame read from a stream. reserved is the memory its pooled
// buffer holds until frameReader.done; zero for a frame in the stream's
// own small buffer.
type frame struct {
	data     []byte
	reserved int
}
