package unicast

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func uvarint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		max     int
		wantErr error
		want    []byte
	}{
		{"one byte is prefixed with a one byte length", []byte{7}, 10, nil, []byte{1, 7}},
		{"exactly max is allowed", bytes.Repeat([]byte{1}, 200), 200, nil, append(uvarint(200), bytes.Repeat([]byte{1}, 200)...)},
		{"one past max is refused", make([]byte, 201), 200, ErrTooLarge, nil},
		{"empty is refused", nil, 10, ErrEmpty, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteFrame(&buf, tt.data, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && buf.Len() != 0 {
				t.Fatalf("wrote %d bytes before refusing", buf.Len())
			}
			if tt.wantErr == nil && !bytes.Equal(buf.Bytes(), tt.want) {
				t.Fatalf("wrote %x, want %x", buf.Bytes(), tt.want)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	const max = 300
	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantErr error
	}{
		{"a whole frame is returned", append(uvarint(3), 'a', 'b', 'c'), []byte("abc"), nil},
		{"a two byte length prefix is decoded", append(uvarint(max), make([]byte, max)...), make([]byte, max), nil},
		{"no input is a clean EOF", nil, nil, io.EOF},
		{"a header above max fails before the body is read", uvarint(max + 1), nil, ErrTooLarge},
		{"a huge header fails without allocating", uvarint(1 << 62), nil, ErrTooLarge},
		{"a zero length frame is a protocol error", uvarint(0), nil, ErrEmpty},
		{"a truncated header is unexpected EOF", []byte{0x80}, nil, io.ErrUnexpectedEOF},
		{"a truncated body is unexpected EOF", append(uvarint(5), 'a'), nil, io.ErrUnexpectedEOF},
		{"a length overflowing 64 bits is an error", bytes.Repeat([]byte{0xff}, 11), nil, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFrame(bufio.NewReader(bytes.NewReader(tt.in)), max)
			switch {
			case tt.wantErr == errAny:
				if err == nil {
					t.Fatal("expected an error")
				}
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestFramesRoundTripBackToBack(t *testing.T) {
	var buf bytes.Buffer
	msgs := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 127), bytes.Repeat([]byte("c"), 128), bytes.Repeat([]byte("d"), 70000)}
	for _, m := range msgs {
		if err := WriteFrame(&buf, m, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for i, m := range msgs {
		got, err := ReadFrame(r, 1<<20)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("frame %d: len %d err %v", i, len(got), err)
		}
	}
	if _, err := ReadFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add(append(uvarint(3), "abc"...))
	f.Add(append(append(uvarint(1), 'x'), append(uvarint(2), "yz"...)...))
	f.Add(uvarint(1 << 40))
	f.Add([]byte{0x80, 0x80})
	f.Add(bytes.Repeat([]byte{0xff}, 12))
	const max = 1 << 10
	f.Fuzz(func(t *testing.T, in []byte) {
		src := bytes.NewReader(in)
		r := bufio.NewReader(src)
		for {
			got, err := ReadFrame(r, max)
			if err != nil {
				if left := src.Len() + r.Buffered(); err == io.EOF && left != 0 {
					t.Fatalf("clean EOF with %d bytes unread", left)
				}
				return
			}
			if len(got) == 0 || len(got) > max {
				t.Fatalf("frame of %d bytes escaped the limit", len(got))
			}
			// Re-encoding must reproduce a valid frame of the same payload.
			var buf bytes.Buffer
			if err := WriteFrame(&buf, got, max); err != nil {
				t.Fatalf("re-encoding: %v", err)
			}
			again, err := ReadFrame(bufio.NewReader(&buf), max)
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("round trip changed the frame: %v", err)
			}
		}
	})
}

// countingMemory is a resource scope with a limit that records what is
// held.
type countingMemory struct {
	held, peak, limit int
}

func (m *countingMemory) ReserveMemory(n int, _ uint8) error {
	if m.limit > 0 && m.held+n > m.limit {
		return errors.New("over the limit")
	}
	m.held += n
	m.peak = max(m.peak, m.held)
	return nil
}

func (m *countingMemory) ReleaseMemory(n int) {
	m.held -= n
	if m.held < 0 {
		panic("released more than reserved")
	}
}

// stalled is a reader that returns its bytes and then blocks forever's
// stand-in: an error marking where the sender stopped.
var errStalled = errors.New("sender stalled")

type stallingReader struct{ r io.Reader }

func (s stallingReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		return n, errStalled
	}
	return n, err
}

func TestFrameMemoryFollowsTheBytesThatArrived(t *testing.T) {
	const max = 4 << 20
	tests := []struct {
		name     string
		declared int
		sent     int
		wantPeak int
	}{
		{"a declared 4 MiB frame with 1 byte sent holds one chunk", max, 1, chunkSize},
		{"a declared 4 MiB frame with 100 KiB sent holds two chunks", max, 100 << 10, 2 * chunkSize},
		{"a declared 4 MiB frame with all but one byte sent holds what arrived", max, max - 1, max},
		{"a small frame that stalls holds only its own size", 10 << 10, 5, 10 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(uvarint(uint64(tt.declared)), make([]byte, tt.sent)...)
			mem := &countingMemory{}
			fr := newFrameReader(bufio.NewReader(stallingReader{bytes.NewReader(in)}), max, mem, 0, newFramePools(max))
			_, err := fr.next(nil)
			if !errors.Is(err, errStalled) {
				t.Fatalf("err = %v, want the stall", err)
			}
			if !fr.inFrame {
				t.Error("a stall after the header is not marked as inside a frame")
			}
			if mem.peak != tt.wantPeak {
				t.Errorf("peak reservation %d, want %d", mem.peak, tt.wantPeak)
			}
			fr.close()
			if mem.held != 0 {
				t.Errorf("%d bytes still reserved after the stream ended", mem.held)
			}
		})
	}
}

func TestACompleteFrameGetsAnExactSizeClassBufferAndGivesItBack(t *testing.T) {
	const n = 1<<20 + 1 // a power of two would round this to 2 MiB
	in := append(uvarint(n), bytes.Repeat([]byte{9}, n)...)
	mem := &countingMemory{}
	fr := newFrameReader(bufio.NewReader(bytes.NewReader(in)), 4<<20, mem, 0, newFramePools(4<<20))
	f, err := fr.next(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.data) != n || f.data[n-1] != 9 {
		t.Fatalf("frame of %d bytes, last %d", len(f.data), f.data[len(f.data)-1])
	}
	wantCap := (n + chunkSize - 1) / chunkSize * chunkSize
	if cap(f.data) != wantCap || mem.held != wantCap {
		t.Errorf("buffer cap %d, reserved %d; want both %d", cap(f.data), mem.held, wantCap)
	}
	fr.done(&f)
	if mem.held != 0 {
		t.Errorf("%d bytes still reserved after the handler returned", mem.held)
	}
}

func TestARefusedReservationEndsTheFrameAndReleasesItsChunks(t *testing.T) {
	in := append(uvarint(1<<20), make([]byte, 1<<20)...)
	mem := &countingMemory{limit: 5 * chunkSize}
	fr := newFrameReader(bufio.NewReader(bytes.NewReader(in)), 4<<20, mem, 0, newFramePools(4<<20))
	if _, err := fr.next(nil); !errors.Is(err, errNoMemory) {
		t.Fatalf("err = %v, want errNoMemory", err)
	}
	if mem.held != 0 || mem.peak > mem.limit {
		t.Errorf("held %d (peak %d) after refusal, limit %d", mem.held, mem.peak, mem.limit)
	}
}

// readHeader accepts exactly the uvarints encoding/binary accepts.
func FuzzReadHeaderMatchesUvarint(f *testing.F) {
	f.Add([]byte{0x01})
	f.Add([]byte{0x80, 0x01})
	f.Add(bytes.Repeat([]byte{0xff}, 9))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x01))
	f.Add(append(bytes.Repeat([]byte{0xff}, 9), 0x02))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := readHeader(bufio.NewReader(bytes.NewReader(in)))
		want, werr := binary.ReadUvarint(bytes.NewReader(in))
		if (err == nil) != (werr == nil) || (err == nil && got != want) {
			t.Fatalf("readHeader = %d, %v; binary.ReadUvarint = %d, %v", got, err, want, werr)
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errBadHeader) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
