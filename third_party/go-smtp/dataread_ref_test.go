package smtp

// edgerelay patch 4: dataReader.Read works on the bufio.Reader's buffered
// bytes in blocks. refDataReader is v0.25.1's byte-at-a-time Read, kept
// here as the reference that FuzzDataReaderBlocks compares it with.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

type refDataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

// Read is dataReader.Read of go-smtp v0.25.1, unchanged.
func (r *refDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	// Code below is taken from net/textproto with only one modification to
	// not rewrite CRLF -> LF.

	// Run data through a simple state machine to
	// elide leading dots and detect End-of-Data (<CR><LF>.<CR><LF>) line.
	const (
		stateBeginLine = iota // beginning of line; initial state; must be zero
		stateDot              // read . at beginning of line
		stateDotCR            // read .\r at beginning of line
		stateCR               // read \r (possibly at end of line)
		stateData             // reading data in middle of line
		stateEOF              // reached .\r\n end marker line
	)
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}

// typicalBody is a message of size bytes or a little more in lines of 78
// characters (a few dot-stuffed), with the final dot.
func typicalBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: benchmark\r\n\r\n")
	line := strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 2)[:78]
	for i := 0; b.Len() < size; i++ {
		if i%50 == 49 {
			b.WriteString("." + line[1:] + "\r\n")
		} else {
			b.WriteString(line + "\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func benchmarkDataReader(b *testing.B, size int, ref bool) {
	body := typicalBody(size)
	src := bytes.NewReader(body)
	br := bufio.NewReaderSize(src, 4096) // the server's pooled read buffer
	buf := make([]byte, 64<<10)          // relay reads through a 64 KiB bufio.Reader
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		src.Reset(body)
		br.Reset(src)
		var r io.Reader = &dataReader{r: br, limited: true, n: 64 << 20}
		if ref {
			r = &refDataReader{r: br, limited: true, n: 64 << 20}
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
}

func BenchmarkDataReader(b *testing.B) {
	for _, size := range []int{10 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("blocks/%dKiB", size>>10), func(b *testing.B) { benchmarkDataReader(b, size, false) })
		b.Run(fmt.Sprintf("bytewise/%dKiB", size>>10), func(b *testing.B) { benchmarkDataReader(b, size, true) })
	}
}

var errConn = errors.New("connection error")

// chunkReader is a connection that returns data in reads of the sizes in
// chunks (cycled; 0 is an empty read, never more than twice in a row, as a
// connection does not return empty reads for ever), then ends with io.EOF
// or errConn, with the last data or in a read of its own.
type chunkReader struct {
	data    []byte
	chunks  []byte
	i       int
	errKind byte
	done    int // bytes returned so far
	empty   int // empty reads in a row
}

func (c *chunkReader) Read(p []byte) (int, error) {
	end := io.EOF
	if c.errKind&1 != 0 {
		end = errConn
	}
	if len(c.data) == 0 {
		return 0, end
	}
	size := len(c.data)
	if len(c.chunks) > 0 {
		size = int(c.chunks[c.i%len(c.chunks)])
		c.i++
	}
	if size == 0 {
		if c.empty++; c.empty > 2 {
			size, c.empty = 1, 0
		}
	} else {
		c.empty = 0
	}
	if size > len(p) {
		size = len(p)
	}
	if size > len(c.data) {
		size = len(c.data)
	}
	n := copy(p, c.data[:size])
	c.data = c.data[n:]
	c.done += n
	if len(c.data) == 0 && c.errKind&2 != 0 {
		return n, end
	}
	return n, nil
}

// readSizes gives the sizes of the Read buffers: sizes cycled, an empty one
// never more than twice in a row.
type readSizes struct {
	sizes []byte
	i     int
	zeros int
}

func (s *readSizes) next() int {
	n := 4096
	if len(s.sizes) > 0 {
		n = int(s.sizes[s.i%len(s.sizes)])
		s.i++
	}
	if n == 0 {
		if s.zeros++; s.zeros > 2 {
			n, s.zeros = 1, 0
		}
	} else {
		s.zeros = 0
	}
	return n
}

// FuzzDataReaderBlocks checks that dataReader.Read (blocks, edgerelay patch
// 4) gives exactly what v0.25.1's byte-at-a-time Read gives, call by call:
// the same bytes, the same error, the same MaxMessageBytes accounting, and
// the same bytes read from the connection and left in the bufio.Reader
// (the pipelined commands after the final dot). The connection returns
// fuzz-chosen chunk sizes (under the line limit reader when lineLimit is
// set), the bufio.Reader is of a fuzz-chosen size >= 16, the Read buffers
// of fuzz-chosen sizes; drain does what handleData does after Data returns
// (limited = false, then read to the end).
func FuzzDataReaderBlocks(f *testing.F) {
	f.Add([]byte("Subject: a\r\n\r\nhello\r\n..dot\r\n.\r\nMAIL FROM:<a@b>\r\n"), []byte{7, 3, 0, 200}, []byte{5, 1, 64}, uint16(0), uint16(0), byte(0), uint8(0), false)
	f.Add([]byte("a\r\n.\rb\r\n.x\r\r\n.\r\n\r\n.\r\nQUIT\r\n"), []byte{1}, []byte{3}, uint16(16), uint16(0), byte(2), uint8(0), false)
	f.Add(typicalBody(2000), []byte{100, 17}, []byte{255, 0, 13}, uint16(40), uint16(300), byte(1), uint8(100), true)
	f.Add([]byte("no end\r\n.\r"), []byte{}, []byte{}, uint16(0), uint16(5), byte(3), uint8(0), true)
	f.Add([]byte(".\r\n"), []byte{0, 0, 1}, []byte{0, 0, 0, 1}, uint16(1), uint16(1), byte(0), uint8(3), false)
	f.Fuzz(func(t *testing.T, data, chunks, sizes []byte, bufSize, limit uint16, errKind byte, lineLimit uint8, drain bool) {
		bufSize = 16 + bufSize%4096
		type side struct {
			conn *chunkReader
			br   *bufio.Reader
		}
		mk := func() side {
			c := &chunkReader{data: data, chunks: chunks, errKind: errKind}
			var r io.Reader = c
			if lineLimit > 0 {
				r = &lineLimitReader{R: c, LineLimit: int(lineLimit)}
			}
			return side{c, bufio.NewReaderSize(r, int(bufSize))}
		}
		got, want := mk(), mk()
		dr := &dataReader{r: got.br}
		ref := &refDataReader{r: want.br}
		if limit > 0 {
			dr.limited, dr.n = true, int64(limit)
			ref.limited, ref.n = true, int64(limit)
		}
		rs := readSizes{sizes: sizes}
		for calls := 0; ; calls++ {
			size := rs.next()
			gb, wb := make([]byte, size), make([]byte, size)
			gn, gerr := dr.Read(gb)
			wn, werr := ref.Read(wb)
			if gn != wn || gerr != werr || !bytes.Equal(gb[:gn], wb[:wn]) {
				t.Fatalf("Read %d (%d bytes): got %d %q, %v; want %d %q, %v", calls, size, gn, gb[:gn], gerr, wn, wb[:wn], werr)
			}
			if dr.state != ref.state || dr.n != ref.n || got.conn.done != want.conn.done || got.br.Buffered() != want.br.Buffered() {
				t.Fatalf("after Read %d: state %d, n %d, %d bytes read, %d buffered; want %d, %d, %d, %d", calls,
					dr.state, dr.n, got.conn.done, got.br.Buffered(), ref.state, ref.n, want.conn.done, want.br.Buffered())
			}
			if gerr == ErrDataTooLarge && drain {
				dr.limited, ref.limited = false, false
				continue
			}
			if gerr != nil && gerr != ErrDataTooLarge {
				// Once more after the end: the same again.
				gn, gerr = dr.Read(gb)
				wn, werr = ref.Read(wb)
				if gn != wn || gerr != werr || !bytes.Equal(gb[:gn], wb[:wn]) {
					t.Fatalf("Read after the end: got %d %q, %v; want %d %q, %v", gn, gb[:gn], gerr, wn, wb[:wn], werr)
				}
				break
			}
			if gerr == ErrDataTooLarge {
				break
			}
			if calls > 4*len(data)+100 {
				t.Fatalf("no end after %d reads", calls)
			}
		}
		// What is left for the next command: the buffered bytes, then
		// the rest of the connection.
		gl, gerr := io.ReadAll(got.br)
		wl, werr := io.ReadAll(want.br)
		if !bytes.Equal(gl, wl) || gerr != werr {
			t.Fatalf("left: got %q, %v; want %q, %v", gl, gerr, wl, werr)
		}
	})
}

// TestDataReaderPipelinedLeft checks, for every bufio size and read split,
// that what follows the final dot stays in the bufio.Reader (or on the
// connection) for the next command, and that the data is dot-unstuffed.
func TestDataReaderPipelinedLeft(t *testing.T) {
	in := "Subject: x\r\n\r\n..leading dot\r\nline\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
	wantData := "Subject: x\r\n\r\n.leading dot\r\nline\r\n"
	wantLeft := "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
	for bufSize := 16; bufSize <= 128; bufSize++ {
		for chunk := 1; chunk <= len(in); chunk += 7 {
			for _, readSize := range []int{1, 3, 16, 4096} {
				conn := &chunkReader{data: []byte(in), chunks: []byte{byte(chunk)}}
				br := bufio.NewReaderSize(conn, bufSize)
				r := &dataReader{r: br, limited: true, n: 1 << 20}
				var out []byte
				buf := make([]byte, readSize)
				var err error
				for err == nil {
					var n int
					n, err = r.Read(buf)
					out = append(out, buf[:n]...)
				}
				if err != io.EOF || string(out) != wantData {
					t.Fatalf("bufio %d, chunks %d, reads %d: got %q, %v", bufSize, chunk, readSize, out, err)
				}
				left, _ := io.ReadAll(br)
				if string(left) != wantLeft {
					t.Fatalf("bufio %d, chunks %d, reads %d: left %q, want %q", bufSize, chunk, readSize, left, wantLeft)
				}
			}
		}
	}
}
