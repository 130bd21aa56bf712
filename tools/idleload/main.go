// Command idleload opens many authenticated SMTP submission sessions and
// holds them idle, to measure what an idle session costs the server (see
// scripts/bench-idle.sh and docs/benchmarks.md, "Idle sessions and
// start-up"). Each session: connect, EHLO, STARTTLS (certificate not
// verified), EHLO, AUTH PLAIN, then nothing until idleload is stopped
// (SIGINT/SIGTERM) or -hold has passed. It talks to loopback only.
//
//	go run ./tools/idleload -addr 127.0.0.1:2587 -n 10000 -user u@x -pass secret
//
// Connections come from -sources loopback addresses (127.0.0.2, 127.0.0.3,
// ...) in turn, so that no source address runs short of ports and a
// per-IP limit sees n/sources connections each. When all sessions are
// open (or failed) it prints "ready N" on a line of its own; a script
// waits for that line before it measures the server.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:587", "submission address (STARTTLS), loopback only")
	n := flag.Int("n", 1000, "sessions to open")
	sources := flag.Int("sources", 50, "source addresses 127.0.0.2 ... used in turn")
	par := flag.Int("c", 32, "sessions being opened at once")
	user := flag.String("user", "", "AUTH PLAIN user")
	pass := flag.String("pass", "", "AUTH PLAIN password")
	hold := flag.Duration("hold", 0, "exit after holding the sessions this long (0: until signalled)")
	flag.Parse()

	ap, err := netip.ParseAddrPort(*addr)
	if err != nil || !ap.Addr().IsLoopback() {
		fmt.Fprintf(os.Stderr, "idleload: -addr must be a loopback ip:port (%q)\n", *addr)
		os.Exit(2)
	}
	if *sources < 1 || *sources > 250 {
		fmt.Fprintln(os.Stderr, "idleload: -sources must be 1..250")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		mu      sync.Mutex
		conns   []net.Conn
		ok, bad atomic.Int64
		firstEr atomic.Value
	)
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				src := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i%*sources)})
				c, err := open(ctx, src, *addr, *user, *pass)
				if err != nil {
					bad.Add(1)
					firstEr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				ok.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Printf("open %d failed %d after %.1fs\n", ok.Load(), bad.Load(), time.Since(start).Seconds())
			}
		}
	}()
feed:
	for i := 0; i < *n; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(done)
	if e := firstEr.Load(); e != nil {
		fmt.Printf("first error: %s\n", e)
	}
	fmt.Printf("ready %d (failed %d) in %.1fs\n", ok.Load(), bad.Load(), time.Since(start).Seconds())

	// Hold them; count the ones the server closes meanwhile.
	var closed atomic.Int64
	for _, c := range conns {
		go func() {
			// Any return (a 421, EOF, a reset) means the server
			// spoke or closed: an idle session hears nothing.
			c.Read(make([]byte, 512))
			closed.Add(1)
		}()
	}
	var timeout <-chan time.Time
	if *hold > 0 {
		timeout = time.After(*hold)
	}
	select {
	case <-ctx.Done():
	case <-timeout:
	}
	fmt.Printf("closing %d sessions (%d closed or spoken to by the server meanwhile)\n", len(conns), closed.Load())
	for _, c := range conns {
		c.Close()
	}
}

// open makes one authenticated session from src and returns it idle.
func open(ctx context.Context, src netip.Addr, addr, user, pass string) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   30 * time.Second,
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(60 * time.Second))
	fail := func(err error) (net.Conn, error) { raw.Close(); return nil, err }
	br := bufio.NewReader(raw)
	if _, err := reply(br, "220"); err != nil {
		return fail(err)
	}
	if err := cmd(raw, br, "EHLO idleload.test", "250"); err != nil {
		return fail(err)
	}
	if err := cmd(raw, br, "STARTTLS", "220"); err != nil {
		return fail(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(err)
	}
	br = bufio.NewReader(tc)
	if err := cmd(tc, br, "EHLO idleload.test", "250"); err != nil {
		return fail(err)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if err := cmd(tc, br, "AUTH PLAIN "+cred, "235"); err != nil {
		return fail(fmt.Errorf("AUTH: %w", err))
	}
	raw.SetDeadline(time.Time{})
	return tc, nil
}

func cmd(w net.Conn, br *bufio.Reader, line, want string) error {
	if _, err := fmt.Fprintf(w, "%s\r\n", line); err != nil {
		return err
	}
	_, err := reply(br, want)
	return err
}

// reply reads a (multi-line) reply and checks its code.
func reply(br *bufio.Reader, want string) (string, error) {
	var all strings.Builder
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return all.String(), err
		}
		all.WriteString(l)
		if len(l) < 4 || l[3] != '-' {
			if !strings.HasPrefix(l, want) {
				return all.String(), fmt.Errorf("want %s, got %q", want, strings.TrimSpace(l))
			}
			return all.String(), nil
		}
	}
}
