package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// TestReadyzServeWiring: the running service's /readyz asks the spool and
// the bounce store. A read-only spool, then a read-only bounce store, turn
// it 503 naming "queue", then "bounce_store"; each recovers by itself.
func TestReadyzServeWiring(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := ln.Addr().String()
	ln.Close()
	startServe(t, map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": httpAddr, "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": "127.0.0.1:0", "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:0",
		"RELAY_AUTH": "file", "RELAY_GATEWAY": "127.0.0.1:1", "RELAY_GATEWAY_TLS": "none",
	})

	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	probe := func() (int, map[string]string) {
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body struct {
			NotReady map[string]string `json:"not_ready"`
		}
		json.Unmarshal(b, &body)
		return resp.StatusCode, body.NotReady
	}
	waitFor := func(want int, part, when string) {
		t.Helper()
		var code int
		var parts map[string]string
		for i := 0; i < 250; i++ {
			code, parts = probe()
			if code == want && (part == "" || parts[part] != "") {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("%s: /readyz %d %v, want %d naming %q", when, code, parts, want, part)
	}
	waitFor(200, "", "started")
	undo := testutil.ReadOnly(t, filepath.Join(dir, "spool"))
	waitFor(503, "queue", "spool read-only")
	undo()
	waitFor(200, "", "spool writable again")
	undo = testutil.ReadOnly(t, filepath.Join(dir, "bounces"))
	waitFor(503, "bounce_store", "bounce store read-only")
	undo()
	waitFor(200, "", "bounce store writable again")
}
