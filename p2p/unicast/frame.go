package unicast

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// checked against max before the payload buffer is allocated, so a hostile
// header cannot make us allocate more than max bytes.
//
// It returns io.EOF only when r ends cleanly between frames,
// io.ErrUnexpectedEOF when it ends inside one, ErrTooLarge for a declared
// length above max, and ErrEmpty for a zero-length frame (never produced by
// WriteFrame, so treated as a protocol violation).
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	return readFrame(r, max, func(n int) []byte { return make([]byte, n) })
}

// readFrame is ReadFrame taking the payload buffer from alloc, called with
// the checked length, so a read loop can reuse buffers.
func readFrame(r *bufio.Reader, max int, alloc func(n int) []byte) ([]byte, error) {
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, ErrEmpty
	}
	if max < 0 || size > uint64(max) {
		return nil, fmt.Errorf("frame header declares %d bytes, limit %d: %w", size, max, ErrTooLarge)
	}
	buf := alloc(int(size))
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}
