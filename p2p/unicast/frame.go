package unicast

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/network"
)

// WriteFrame writes data as one frame: its length as an unsigned varint,
// then the bytes. It refuses empty data and data longer than max before
// writing anything. Wrap w in a bufio.Writer and flush after each frame to
// keep the header and payload in one transport write.
func WriteFrame(w io.Writer, data []byte, max int) error {
	if len(data) == 0 {
		return ErrEmpty
	}
	if len(data) > max {
		return fmt.Errorf("frame of %d bytes, limit %d: %w", len(data), max, ErrTooLarge)
	}
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(data)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// ReadFrame reads one frame written by WriteFrame. The declared length is
// checked against max before anything is allocated, and the payload's
// memory grows in 64 KiB chunks as bytes arrive, so a hostile header
// cannot make us allocate more than the sender actually sent.
//
// It returns io.EOF only when r ends cleanly between frames,
// io.ErrUnexpectedEOF when it ends inside one, ErrTooLarge for a declared
// length above max, and ErrEmpty for a zero-length frame (never produced by
// WriteFrame, so treated as a protocol violation).
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	fr := newFrameReader(r, max, noMemory{}, network.ReservationPriorityAlways, newFramePools(0))
	f, err := fr.next(nil)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(f.data)
	fr.done(&f)
	fr.close()
	return out, nil
}

// frameReader reads the frames of one stream. Every byte it holds is
// reserved from mem first: a frame of up to chunkSize bytes uses a buffer
// the stream keeps, a larger one grows chunk by chunk as its bytes arrive
// and is copied into one exact-size buffer once complete.
type frameReader struct {
	r     *bufio.Reader
	max   int
	mem   memory
	prio  uint8
	pools *framePools

	small         []byte // reused for frames up to chunkSize
	smallReserved int
	chunks        [][]byte // the big frame being read
	// inFrame says the last next got past a header: an error it returned
	// came from inside a frame.
	inFrame bool
}

func newFrameReader(r *bufio.Reader, max int, mem memory, prio uint8, pools *framePools) *frameReader {
	return &frameReader{r: r, max: max, mem: mem, prio: prio, pools: pools}
}

// errBadHeader wraps a length prefix that is not a valid uvarint.
var errBadHeader = errors.New("unicast: malformed frame header")

// errNoMemory wraps the resource manager's refusal of a frame's memory.
var errNoMemory = errors.New("unicast: frame memory refused by the resource manager")

// next reads one frame. started, when not nil, is called with the declared
// size once the header is read (to arm the whole-frame deadline). The
// frame's memory stays reserved until done.
func (fr *frameReader) next(started func(size int) error) (frame, error) {
	fr.inFrame = false
	size, err := readHeader(fr.r)
	if err != nil {
		return frame{}, err
	}
	if size == 0 {
		return frame{}, ErrEmpty
	}
	if fr.max < 0 || size > uint64(fr.max) {
		return frame{}, fmt.Errorf("frame header declares %d bytes, limit %d: %w", size, fr.max, ErrTooLarge)
	}
	n := int(size)
	fr.inFrame = true
	if started != nil {
		if err := started(n); err != nil {
			return frame{}, err
		}
	}
	if n <= chunkSize {
		return fr.readSmall(n)
	}
	return fr.readBig(n)
}

func (fr *frameReader) readSmall(n int) (frame, error) {
	if cap(fr.small) < n {
		grow := max(n, 4<<10)
		if err := fr.mem.ReserveMemory(grow-fr.smallReserved, fr.prio); err != nil {
			return frame{}, fmt.Errorf("%w: %w", errNoMemory, err)
		}
		fr.small, fr.smallReserved = make([]byte, grow), grow
	}
	buf := fr.small[:n]
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		return frame{}, unexpected(err)
	}
	return frame{data: buf}, nil
}

func (fr *frameReader) readBig(n int) (frame, error) {
	defer fr.dropChunks()
	for got := 0; got < n; {
		if err := fr.mem.ReserveMemory(chunkSize, fr.prio); err != nil {
			return frame{}, fmt.Errorf("%w: %w", errNoMemory, err)
		}
		c := (*chunkPool.Get().(*[]byte))[:min(chunkSize, n-got)]
		fr.chunks = append(fr.chunks, c)
		if _, err := io.ReadFull(fr.r, c); err != nil {
			return frame{}, unexpected(err)
		}
		got += len(c)
	}
	buf := fr.pools.get(n)
	if err := fr.mem.ReserveMemory(cap(buf), fr.prio); err != nil {
		fr.pools.put(buf)
		return frame{}, fmt.Errorf("%w: %w", errNoMemory, err)
	}
	off := 0
	for _, c := range fr.chunks {
		off += copy(buf[off:], c)
	}
	return frame{data: buf, reserved: cap(buf)}, nil
}

// dropChunks returns the chunks of the frame being read, and their memory.
func (fr *frameReader) dropChunks() {
	for _, c := range fr.chunks {
		c = c[:chunkSize]
		chunkPool.Put(&c)
	}
	fr.mem.ReleaseMemory(len(fr.chunks) * chunkSize)
	clear(fr.chunks)
	fr.chunks = fr.chunks[:0]
}

// done takes back a frame whose handler has returned.
func (fr *frameReader) done(f *frame) {
	if f.reserved > 0 {
		fr.mem.ReleaseMemory(f.reserved)
		fr.pools.put(f.data)
	}
	*f = frame{}
}

// close releases what the reader keeps between frames.
func (fr *frameReader) close() {
	if fr.smallReserved > 0 {
		fr.mem.ReleaseMemory(fr.smallReserved)
		fr.small, fr.smallReserved = nil, 0
	}
}

// readHeader reads a frame's uvarint length. Errors of the stream pass
// through as they are (io.EOF only before a first byte); a prefix that is
// not a valid uvarint is errBadHeader, the sender's fault.
func readHeader(r *bufio.Reader) (uint64, error) {
	var x uint64
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			break
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: length prefix overflows 64 bits", errBadHeader)
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
