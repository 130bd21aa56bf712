package relay

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestCRLFReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"clean", "Subject: x\r\n\r\nhello\r\n", true},
		{"empty", "", true},
		{"bare LF", "Subject: x\n\r\nhello\r\n", false},
		{"bare CR", "Subject: x\r\rhello\r\n", false},
		{"LF dot LF", "a\r\n\n.\nb\r\n", false},
		{"LF dot CRLF", "a\n.\r\nMAIL FROM:<x@y>\r\n", false},
		{"CR dot CR", "a\r.\rb\r\n", false},
		{"CRLF dot CR", "a\r\n.\rb\r\n", false},
		{"trailing CR", "abc\r", false},
		{"LFCR", "a\n\rb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time too, so state carries across reads.
			for _, r := range []io.Reader{bytes.NewReader([]byte(tt.in)), iotest.OneByteReader(bytes.NewReader([]byte(tt.in)))} {
				out, err := io.ReadAll(&crlfReader{r: r})
				if tt.ok && (err != nil || string(out) != tt.in) {
					t.Fatalf("got %q, %v; want the input unchanged", out, err)
				}
				if !tt.ok && !errors.Is(err, errBareLF) {
					t.Fatalf("got err %v, want errBareLF", err)
				}
			}
		})
	}
}

func FuzzCRLFReader(f *testing.F) {
	f.Add([]byte("a\r\nb\r\n"))
	f.Add([]byte("a\n.\nb"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := io.ReadAll(&crlfReader{r: iotest.HalfReader(bytes.NewReader(in))})
		clean := !bytes.Contains(bytes.ReplaceAll(in, []byte("\r\n"), nil), []byte("\r")) &&
			!bytes.Contains(bytes.ReplaceAll(in, []byte("\r\n"), nil), []byte("\n"))
		if clean != (err == nil) {
			t.Fatalf("input %q: clean=%v err=%v", in, clean, err)
		}
		if err == nil && !bytes.Equal(out, in) {
			t.Fatalf("output differs")
		}
	})
}
