// Command sink is a development SMTP server that accepts every message and
// prints it: the quick start's stand-in for a real gateway. It is not part
// of the edgerelay binary.
//
//	go run ./tools/sink -addr 127.0.0.1:2525 [-dir DIR]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2525", "listen address")
	dir := flag.String("dir", "", "also write each message to DIR/<n>.eml")
	flag.Parse()
	n := 0
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{onData: func(from string, to []string, data []byte) {
			n++
			fmt.Printf("=== sink: message %d from <%s> to %v (%d bytes) at %s\n%s\n", n, from, to, len(data), time.Now().Format(time.TimeOnly), data)
			if *dir != "" {
				os.MkdirAll(*dir, 0o755)
				os.WriteFile(filepath.Join(*dir, fmt.Sprintf("%d.eml", n)), data, 0o644)
			}
		}}, nil
	})
	s := smtp.NewServer(be)
	s.Addr = *addr
	s.Domain = "sink.local"
	s.AllowInsecureAuth = true
	s.EnableDSN = false
	log.Printf("sink listening on %s", *addr)
	log.Fatal(s.ListenAndServe())
}

type session struct {
	onData func(string, []string, []byte)
	from   string
	to     []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	s.onData(s.from, s.to, b.Bytes())
	return nil
}
