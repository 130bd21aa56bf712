package relay

import (
	"bufio"
	"bytes"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody\r\n"))
	f.Add([]byte("From: \"x, y\" <a@b>, c@d\r\n folded\r\n\r\n"))
	f.Add([]byte("no colon here\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := readHeader(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(in, h.raw) {
			t.Fatalf("raw header %q is not a prefix of the input", h.raw)
		}
		h.fromAddresses()
	})
}

func FuzzParseOAuth(f *testing.F) {
	f.Add("n,a=user@example.org,\x01host=h\x01auth=Bearer tok\x01\x01", true)
	f.Add("user=u\x01auth=Bearer tok\x01\x01", false)
	f.Fuzz(func(t *testing.T, in string, bearer bool) {
		mech := mechXOAuth2
		if bearer {
			mech = mechOAuthBearer
		}
		_, tok, ok := parseOAuth(mech, []byte(in))
		if ok && tok == "" {
			t.Fatal("ok without a token")
		}
	})
}
