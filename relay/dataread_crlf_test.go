package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// refCRLFReader is crlfReader's byte-at-a-time Read as it was before the
// check went line by line: the reference FuzzCRLFReaderBlocks compares it
// with.
type refCRLFReader struct {
	r      io.Reader
	prevCR bool
	err    error
}

func (c *refCRLFReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if c.prevCR != (b == '\n') {
			// CR followed by something other than LF, or LF without CR.
			c.err = errBareLF
			return i, c.err
		}
		c.prevCR = b == '\r'
	}
	if err == io.EOF && c.prevCR {
		c.err = errBareLF
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

var errDatareadConn = errors.New("connection error")

// datareadChunks returns data in reads of the sizes in chunks (cycled, 0 an
// empty read), then io.EOF or errDatareadConn, with the last bytes or alone.
type datareadChunks struct {
	data    []byte
	chunks  []byte
	i       int
	errKind byte
}

func (c *datareadChunks) Read(p []byte) (int, error) {
	end := io.EOF
	if c.errKind&1 != 0 {
		end = errDatareadConn
	}
	if len(c.data) == 0 {
		return 0, end
	}
	size := len(c.data)
	if len(c.chunks) > 0 {
		size = int(c.chunks[c.i%len(c.chunks)])
		c.i++
	}
	n := copy(p, c.data[:min(size, len(c.data))])
	c.data = c.data[n:]
	if len(c.data) == 0 && c.errKind&2 != 0 {
		return n, end
	}
	return n, nil
}

// FuzzCRLFReaderBlocks checks that crlfReader gives, Read by Read, the same
// bytes, counts and errors as the byte-at-a-time reference, for data in
// fuzz-chosen chunks read with fuzz-chosen buffer sizes.
func FuzzCRLFReaderBlocks(f *testing.F) {
	f.Add([]byte("a\r\nb\r\n"), []byte{1}, []byte{3}, byte(0))
	f.Add([]byte("a\r\n\n.\nb\r\r\n\r"), []byte{2, 0, 5}, []byte{4, 1}, byte(2))
	f.Add([]byte("abc\r"), []byte{}, []byte{}, byte(1))
	f.Add([]byte("x\r\ny\rz\r\n"), []byte{4}, []byte{200}, byte(3))
	f.Fuzz(func(t *testing.T, data, chunks, sizes []byte, errKind byte) {
		got := &crlfReader{r: &datareadChunks{data: data, chunks: chunks, errKind: errKind}}
		want := &refCRLFReader{r: &datareadChunks{data: data, chunks: chunks, errKind: errKind}}
		for i := 0; i < 4*len(data)+10; i++ {
			size := 64
			if len(sizes) > 0 {
				size = int(sizes[i%len(sizes)])
			}
			gb, wb := make([]byte, size), make([]byte, size)
			gn, gerr := got.Read(gb)
			wn, werr := want.Read(wb)
			if gn != wn || gerr != werr || !bytes.Equal(gb[:gn], wb[:wn]) || got.prevCR != want.prevCR && gerr == nil {
				t.Fatalf("Read %d (%d bytes): got %d %q, %v; want %d %q, %v", i, size, gn, gb[:gn], gerr, wn, wb[:wn], werr)
			}
			if gerr != nil && gerr != io.EOF && want.err != nil {
				break
			}
		}
	})
}

func BenchmarkCRLFReader(b *testing.B) {
	line := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 2)[:78] + "\r\n"
	for _, size := range []int{10 << 10, 1 << 20} {
		body := []byte(strings.Repeat(line, size/len(line)+1))
		buf := make([]byte, 64<<10)
		for _, impl := range []string{"blocks", "bytewise"} {
			b.Run(fmt.Sprintf("%s/%dKiB", impl, size>>10), func(b *testing.B) {
				src := bytes.NewReader(body)
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					src.Reset(body)
					var r io.Reader = &crlfReader{r: src}
					if impl == "bytewise" {
						r = &refCRLFReader{r: src}
					}
					for {
						_, err := r.Read(buf)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
