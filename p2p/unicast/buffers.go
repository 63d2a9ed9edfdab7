package unicast

import (
	"math/bits"
	"sync"
)

// smallFrame is the largest frame a stream reads into a buffer of its own.
// Larger frames borrow from bigPools and give the buffer back as soon as
// the handler returns, so an idle stream never holds more than smallFrame.
const smallFrame = 64 << 10

// bigPools holds buffers for frames above smallFrame, one pool per power of
// two. Reusing them matters at 1 MB frames: allocating and zeroing a fresh
// buffer per frame, and collecting it, cost about half the bandwidth.
var bigPools [bits.UintSize]sync.Pool

// frameBuffers hands a read loop its payload buffers.
type frameBuffers struct{ small []byte }

func (b *frameBuffers) get(n int) []byte {
	if n <= smallFrame {
		if cap(b.small) < n {
			b.small = make([]byte, n, max(n, 4<<10))
		}
		return b.small[:n]
	}
	class := bits.Len(uint(n - 1)) // 2^class >= n
	if p, ok := bigPools[class].Get().(*[]byte); ok {
		return (*p)[:n]
	}
	return make([]byte, n, 1<<class)
}

// done takes back the buffer of a frame whose handler has returned.
func (b *frameBuffers) done(buf []byte) {
	if c := cap(buf); c > smallFrame && c&(c-1) == 0 {
		buf = buf[:0]
		bigPools[bits.Len(uint(c-1))].Put(&buf)
	}
}
