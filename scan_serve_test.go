package main

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// TestConfigScanErrors: every wrong RELAY_CLAMD_* value stops startup
// with an error naming the variable.
func TestConfigScanErrors(t *testing.T) {
	for _, tt := range []struct{ k, v, want string }{
		{"RELAY_CLAMD_ADDR", "127.0.0.1:3310", "tcp://host:port"},
		{"RELAY_CLAMD_ADDR", "unix://clamd.ctl", "unix:///"},
		{"RELAY_CLAMD_TIMEOUT", "10ms", "at least"},
		{"RELAY_CLAMD_TIMEOUT", "soon", "duration"},
		{"RELAY_CLAMD_MAX_BYTES", "25M", "number of bytes"},
		{"RELAY_CLAMD_MAX_BYTES", "100", "too small"},
		{"RELAY_CLAMD_OVERSIZE", "truncate", "refuse or accept"},
		{"RELAY_CLAMD_FAIL_OPEN", "sometimes", "true or false"},
		{"RELAY_CLAMD_MAX_CONNECTIONS", "0", "at least 1"},
		{"RELAY_SCAN_SUBMISSION", "no-thanks", "true or false"},
	} {
		t.Run(tt.k+"="+tt.v, func(t *testing.T) {
			t.Setenv(tt.k, tt.v)
			_, err := loadConfig()
			if err == nil || !strings.Contains(err.Error(), tt.k+":") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v: want %s and %q", err, tt.k, tt.want)
			}
		})
	}
}

// startTinyClamd is a stand-in clamd on loopback: it answers INSTREAM
// with FOUND when the stream holds the EICAR text, OK otherwise, and PONG.
func startTinyClamd(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				cmd := make([]byte, 0, 16)
				for b := [1]byte{}; ; {
					if _, err := c.Read(b[:]); err != nil {
						return
					}
					if b[0] == 0 {
						break
					}
					cmd = append(cmd, b[0])
				}
				if string(cmd) == "zPING" {
					c.Write([]byte("PONG\x00"))
					return
				}
				var body bytes.Buffer
				for {
					var n uint32
					if binary.Read(c, binary.BigEndian, &n) != nil {
						return
					}
					if n == 0 {
						break
					}
					io.CopyN(&body, c, int64(n))
				}
				if bytes.Contains(body.Bytes(), []byte("EICAR-STANDARD-ANTIVIRUS-TEST-FILE")) {
					c.Write([]byte("stream: Eicar-Test-Signature FOUND\x00"))
				} else {
					c.Write([]byte("stream: OK\x00"))
				}
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// dialUp connects with STARTTLS to a listener that serve is opening,
// waiting up to 5 s for it.
func dialUp(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	for i := 0; ; i++ {
		c, err := smtp.DialStartTLS(addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			return c
		}
		if i == 250 {
			t.Fatalf("%s not up: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScanServe: the real wiring with RELAY_CLAMD_ADDR (configured by
// environment variables only): over 587 with STARTTLS, an EICAR message
// is refused with 554 5.7.1 and a clean one accepted; /metrics then shows
// the scan counters and the latency histogram, each listed in the README.
func TestScanServe(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, _ := startSink(t)
	httpAddr, subAddr := freeAddr(t), freeAddr(t)
	startServe(t, map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": httpAddr, "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": subAddr, "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:0",
		"RELAY_AUTH": "file", "RELAY_GATEWAY": sink, "RELAY_GATEWAY_TLS": "none",
		"RELAY_CLAMD_ADDR": startTinyClamd(t), "RELAY_CLAMD_TIMEOUT": "5s",
	})
	c := dialUp(t, subAddr)
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "a@example.org", "pw")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: scan\r\n\r\nHello.\r\n"
	infected := msg + `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*` + "\r\n"
	err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader(infected))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || !strings.Contains(se.Message, "Eicar-Test-Signature") {
		t.Fatalf("EICAR: %v", err)
	}
	if err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("clean: %v", err)
	}
	c.Quit()

	fams := scrape(t, httpAddr)
	for _, tc := range []struct {
		result string
		want   float64
	}{{"clean", 1}, {"infected", 1}, {"error", 0}, {"oversize", 0}} {
		if m := sample(fams, "edgerelay_scans_total", "result", tc.result); m == nil || m.Counter.GetValue() != tc.want {
			t.Errorf("edgerelay_scans_total{result=%s} = %v, want %v", tc.result, m, tc.want)
		}
	}
	for _, r := range []string{"clean", "infected"} {
		if n := histCount(fams, "edgerelay_scan_duration_seconds", "result", r); n != 1 {
			t.Errorf("edgerelay_scan_duration_seconds{result=%s} count %d", r, n)
		}
	}
	if m := sample(fams, "edgerelay_scan_unscanned_total", "reason", "fail_open"); m == nil || m.Counter.GetValue() != 0 {
		t.Errorf("edgerelay_scan_unscanned_total{reason=fail_open} = %v", m)
	}
	checkREADMEListsMetrics(t, fams)
}
