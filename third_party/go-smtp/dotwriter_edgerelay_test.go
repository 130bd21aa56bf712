package smtp

import (
	"bufio"
	"bytes"
	"net/textproto"
	"strings"
	"testing"
)

// stuff writes data in the chunks given (sizes cycled; 0 = the rest) with
// the writer made by mk, closes it and returns what reached the wire.
func stuff(data []byte, chunks []byte, bufSize int, textprotoWriter bool) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, bufSize)
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	if textprotoWriter {
		w = textproto.NewWriter(bw).DotWriter()
	} else {
		w = &dotWriter{w: bw}
	}
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(chunks) > 0 && chunks[i%len(chunks)] != 0 {
			if c := int(chunks[i%len(chunks)]); c < n {
				n = c
			}
		}
		if m, err := w.Write(data[:n]); m != n || err != nil {
			panic("short write to a bytes.Buffer")
		}
		data = data[n:]
	}
	w.Close()
	return out.Bytes()
}

func TestDotWriterMatchesTextproto(t *testing.T) {
	cases := []string{
		"", ".", "..", "\r", "\n", "\r\n", ".\r\n", "a\nb", "a\r\rb\n", "\r\r\n.", "line\r\n.dot\r\n..two\r\n",
		"no end", "end\r", "\n.\n.", strings.Repeat("x", 5000) + "\r\n." + strings.Repeat("y", 5000),
	}
	for _, c := range cases {
		for _, chunk := range []byte{0, 1, 2, 3, 7} {
			want := stuff([]byte(c), []byte{chunk}, 16, true)
			got := stuff([]byte(c), []byte{chunk}, 16, false)
			if !bytes.Equal(got, want) {
				t.Errorf("%q in chunks of %d: got %q, want %q", c, chunk, got, want)
			}
		}
	}
}

// FuzzDotWriterBlocks: the block-wise writer puts on the wire exactly what
// textproto's DotWriter does, for any data, any split into Write calls and
// any buffer size.
func FuzzDotWriterBlocks(f *testing.F) {
	f.Add([]byte("a\r\n.b\r\n\n.\r\r\n."), []byte{1, 0}, uint8(16))
	f.Add([]byte(".\n\n\r.\r"), []byte{3}, uint8(0))
	f.Fuzz(func(t *testing.T, data, chunks []byte, size uint8) {
		bs := 16 + int(size)
		want := stuff(data, chunks, bs, true)
		got := stuff(data, chunks, bs, false)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func BenchmarkDotWriter(b *testing.B) {
	line := strings.Repeat("abcdefghij", 7) + "klmnopqr\r\n" // 80 bytes
	body := []byte(strings.Repeat(line, 128))                // 10 KiB
	for _, tp := range []bool{true, false} {
		name := "blocks"
		if tp {
			name = "textproto"
		}
		b.Run(name, func(b *testing.B) {
			bw := bufio.NewWriterSize(discard{}, 4096)
			b.SetBytes(int64(len(body)))
			for i := 0; i < b.N; i++ {
				var w interface {
					Write([]byte) (int, error)
					Close() error
				}
				if tp {
					w = textproto.NewWriter(bw).DotWriter()
				} else {
					w = &dotWriter{w: bw}
				}
				w.Write(body)
				w.Close()
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
