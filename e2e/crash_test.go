package e2e

import (
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestBinaryKill9DuringLoad checks "250 means durable" the hard way: the
// binary is killed with SIGKILL while clients are submitting and the
// worker is delivering. After a restart on the same data directory, every
// message that got 250 is delivered (duplicates are allowed:
// at-least-once), and nothing that did not get 250 matters.
func TestBinaryKill9DuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	sk := newSink(t, "127.0.0.1:0")
	sk.setDelay(2 * time.Millisecond)
	env := baseEnv(t, dir, sk.addr())
	p := start(t, env)

	var mu sync.Mutex
	accepted := map[int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := smtp.DialStartTLS(p.sub, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return
			}
			defer cl.Close()
			if cl.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")) != nil {
				return
			}
			for n := c; ; n += 6 {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("From: <alice@example.org>\r\nSubject: crash %d\r\nX-Seq: %d\r\n\r\nbody %d\r\n", n, n, n)
				if err := cl.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(body)); err != nil {
					return // the server died: this message did not get 250
				}
				mu.Lock()
				accepted[n] = true
				mu.Unlock()
			}
		}()
	}
	waitFor(t, "load to build up", 90*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 200 && len(sk.messages()) >= 50
	})
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	close(stop)
	wg.Wait()
	mu.Lock()
	n := len(accepted)
	mu.Unlock()

	p2 := start(t, env)
	seqRe := regexp.MustCompile(`X-Seq: (\d+)`)
	delivered := func() map[int]int {
		got := map[int]int{}
		for _, m := range sk.messages() {
			if s := seqRe.FindStringSubmatch(string(m.Data)); s != nil {
				var k int
				fmt.Sscan(s[1], &k)
				got[k]++
			}
		}
		return got
	}
	waitFor(t, "every accepted message delivered after the restart", 60*time.Second, func() bool {
		got := delivered()
		for k := range accepted {
			if got[k] == 0 {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, c := range delivered() {
		if c > 1 {
			dups += c - 1
		}
	}
	t.Logf("killed with SIGKILL after %d messages got 250; all %d delivered after restart, %d duplicates", n, n, dups)
	p2.stop()
}
