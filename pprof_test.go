package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestPprofOnlyWhenAsked: /debug/pprof/ is not served by default, and is
// with RELAY_PPROF=true (a named profile and a one-second CPU profile).
func TestPprofOnlyWhenAsked(t *testing.T) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, on := range []bool{false, true} {
		t.Run(map[bool]string{false: "off", true: "on"}[on], func(t *testing.T) {
			dir := t.TempDir()
			h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
			if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			addr := freeAddr(t)
			env := map[string]string{
				"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": addr, "RELAY_HOSTNAME": "relay.test",
				"RELAY_SUBMISSION_ADDR": "127.0.0.1:0", "RELAY_SUBMISSIONS_ADDR": "",
				"RELAY_AUTH_FILE": filepath.Join(dir, "users"), "RELAY_GATEWAY": "127.0.0.1:1", "RELAY_GATEWAY_TLS": "none",
			}
			if on {
				env["RELAY_PPROF"] = "true"
			}
			startServe(t, env)
			waitHTTP(t, client, "http://"+addr+"/healthz")
			code, body := get("http://" + addr + "/debug/pprof/goroutine?debug=1")
			if !on {
				if code != http.StatusNotFound {
					t.Fatalf("RELAY_PPROF unset: /debug/pprof/goroutine = %d, want 404", code)
				}
				return
			}
			if code != 200 || !strings.Contains(body, "goroutine profile:") {
				t.Fatalf("/debug/pprof/goroutine = %d %.80q", code, body)
			}
			if code, body = get("http://" + addr + "/debug/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
				t.Fatalf("/debug/pprof/profile = %d, %d bytes", code, len(body))
			}
		})
	}
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, client *http.Client, url string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}
