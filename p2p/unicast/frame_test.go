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

func TestFrameBuffersAreReusedAndBounded(t *testing.T) {
	var b frameBuffers
	small := b.get(100)
	b.done(small)
	if again := b.get(200); &again[0] != &small[0] {
		t.Error("a small frame did not reuse the stream's buffer")
	}
	big := b.get(smallFrame + 1)
	if cap(big) != 2*smallFrame {
		t.Errorf("big frame buffer cap %d, want the next power of two %d", cap(big), 2*smallFrame)
	}
	b.done(big)
	if cap(b.small) > smallFrame {
		t.Errorf("the stream kept a %d-byte buffer", cap(b.small))
	}
}
