package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// edgerelayBin is the binary built from the module once for these tests.
var edgerelayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgerelay-deploy")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	edgerelayBin = filepath.Join(dir, "edgerelay")
	if out, err := exec.Command("go", "build", "-o", edgerelayBin, "..").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// configVar is one object of "edgerelay config --json".
type configVar struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Default bool   `json:"default"`
	Secret  bool   `json:"secret"`
	From    string `json:"from,omitempty"`
}

// effective runs "edgerelay config --json" with env alone (and PATH): a
// file's settings, with stand-ins where they name things that exist only
// on the platform (a _FILE secret's path becomes a temporary file, the
// data directory a temporary one; secrets the platform injects are given
// in injected). The configuration must be valid and every RELAY_ name
// one edgerelay reads. It returns the effective values by name.
func effective(t *testing.T, env map[string]string, injected ...string) map[string]configVar {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(edgerelayBin, "config", "--json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		switch {
		case !strings.HasPrefix(k, "RELAY_") && !strings.HasPrefix(k, "AWS_"):
			t.Errorf("sets %s: neither a RELAY_ nor an AWS SDK variable", k)
		case strings.HasSuffix(k, "_FILE") && k != "RELAY_AUTH_FILE" && v != "":
			p := filepath.Join(dir, strings.ToLower(k))
			if err := os.WriteFile(p, []byte("stand-in\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			v = p
		case k == "RELAY_DATA_DIR":
			v = filepath.Join(dir, "data")
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for _, k := range injected {
		cmd.Env = append(cmd.Env, k+"=stand-in")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edgerelay config: %v\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("edgerelay config: %s", stderr.String()) // a RELAY_ name it does not read
	}
	var vars []configVar
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vars); err != nil {
		t.Fatal(err)
	}
	out := map[string]configVar{}
	for _, v := range vars {
		out[v.Name] = v
	}
	for _, k := range injected {
		if !out[k].Secret {
			t.Errorf("%s is injected as a secret but is not one of edgerelay's secrets", k)
		}
	}
	return out
}

// listenPort is the port of a RELAY_*_ADDR value, 0 for a disabled one.
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	if addr == "" {
		return 0
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return n
}

// listeners returns the ports a configuration listens on, by what they
// serve: submission (587's), submissions (465's) and http; a role that
// does not run the front end has only http.
func listeners(t *testing.T, cfg map[string]configVar) map[string]int {
	t.Helper()
	out := map[string]int{"http": listenPort(t, cfg["RELAY_HTTP_ADDR"].Value)}
	if cfg["RELAY_ROLE"].Value != "worker" {
		out["submission"] = listenPort(t, cfg["RELAY_SUBMISSION_ADDR"].Value)
		out["submissions"] = listenPort(t, cfg["RELAY_SUBMISSIONS_ADDR"].Value)
	}
	for k, p := range out {
		if p == 0 {
			delete(out, k)
		}
	}
	return out
}

// checkUnprivileged: uid 65534 cannot bind below 1024 unless the platform
// lowers net.ipv4.ip_unprivileged_port_start (Docker does; lowered is the
// value the file sets, or -1 when it sets none).
func checkUnprivileged(t *testing.T, ports map[string]int, lowered int) {
	t.Helper()
	start := 1024
	if lowered >= 0 {
		start = lowered
	}
	for name, p := range ports {
		if p < start {
			t.Errorf("%s listens on %d: uid 65534 cannot bind it there (net.ipv4.ip_unprivileged_port_start %d)", name, p, start)
		}
	}
}
