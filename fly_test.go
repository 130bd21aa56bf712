package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// TestFlyTomlProxyTrustIsPrivate: fly.toml trusts PROXY protocol headers
// only from Fly's private networks. Trusting 0.0.0.0/0 lets any client that
// reaches the port directly claim any address in a PROXY header, and the
// per-IP limits, the AUTH throttle and the logs then believe it.
func TestFlyTomlProxyTrustIsPrivate(t *testing.T) {
	raw, err := os.ReadFile("fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*RELAY_PROXY_PROTOCOL_FROM\s*=\s*"([^"]*)"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("fly.toml does not set RELAY_PROXY_PROTOCOL_FROM (Fly's proxy sends PROXY v2 headers)")
	}
	public := []netip.Addr{
		netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("203.0.113.7"),
		netip.MustParseAddr("2a00:1450::1"), netip.MustParseAddr("2001:db8::1"),
	}
	fly := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("fdaa::/16")}
	for _, s := range strings.Split(string(m[1]), ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		// Within the ranges fly-proxy is seen from (fly.toml's comment):
		// not another private network either.
		if !slices.ContainsFunc(fly, func(f netip.Prefix) bool { return f.Bits() <= p.Bits() && f.Contains(p.Addr()) }) {
			t.Errorf("fly.toml trusts PROXY headers from %s, outside Fly's %v", p, fly)
		}
		if !p.Addr().IsPrivate() {
			t.Errorf("fly.toml trusts PROXY headers from %s, which is not a private network", p)
		}
		for _, a := range public {
			if p.Contains(a) {
				t.Errorf("fly.toml trusts PROXY headers from %s, which contains the public address %s", p, a)
			}
		}
	}
}

// flyToml is the part of fly.toml that TestFlyTomlParsed checks.
type flyToml struct {
	App         string            `toml:"app"`
	KillSignal  string            `toml:"kill_signal"`
	KillTimeout string            `toml:"kill_timeout"`
	Env         map[string]string `toml:"env"`
	Mounts      struct {
		Source      string `toml:"source"`
		Destination string `toml:"destination"`
	} `toml:"mounts"`
	Services []struct {
		Protocol           string `toml:"protocol"`
		InternalPort       int    `toml:"internal_port"`
		AutoStopMachines   any    `toml:"auto_stop_machines"` // "off", "stop", "suspend", or a bool
		AutoStartMachines  *bool  `toml:"auto_start_machines"`
		MinMachinesRunning *int   `toml:"min_machines_running"`
		Ports              []struct {
			Port     int      `toml:"port"`
			Handlers []string `toml:"handlers"`
		} `toml:"ports"`
		TCPChecks  []map[string]any `toml:"tcp_checks"`
		HTTPChecks []map[string]any `toml:"http_checks"`
	} `toml:"services"`
	Checks map[string]struct {
		Type string `toml:"type"`
		Port int    `toml:"port"`
		Path string `toml:"path"`
	} `toml:"checks"`
}

// TestFlyTomlParsed (issue 15, findings 4-6): fly.toml parsed as TOML (an
// unknown key or a type error fails), and its ports, variables and checks
// held against Config's defaults, the HTTP server and the README.
func TestFlyTomlParsed(t *testing.T) {
	var f flyToml
	md, err := toml.DecodeFile("fly.toml", &f)
	if err != nil {
		t.Fatal(err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		// Keys this test does not model are fine, but must be Fly's: list
		// the known ones so a typo in a checked section fails.
		for _, k := range und {
			switch k.String() {
			case "primary_region", "build", "build.dockerfile", "services.concurrency", "services.concurrency.type",
				"services.concurrency.soft_limit", "services.concurrency.hard_limit",
				"services.ports.proxy_proto_options", "services.ports.proxy_proto_options.version",
				"checks.health.interval", "checks.health.timeout":
			default:
				t.Errorf("fly.toml: key %s is not one this test knows", k)
			}
		}
	}
	port := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	// The variables are Config's, and with the documented secret they
	// make a valid configuration.
	clearRelayEnv(t)
	for k, v := range f.Env {
		if !strings.HasPrefix(k, "RELAY_") {
			t.Errorf("fly.toml sets %s, not a RELAY_ variable", k)
		}
		t.Setenv(k, v)
	}
	t.Setenv("RELAY_GATEWAY_PASSWORD", "from fly secrets")
	t.Setenv("RELAY_DATA_DIR", t.TempDir())
	cfg, err := loadConfig()
	if err != nil {
		t.Fatalf("fly.toml's [env] does not validate: %v", err)
	}
	if f.Mounts.Destination != f.Env["RELAY_DATA_DIR"] || f.Mounts.Source != "edgerelay_data" {
		t.Errorf("volume %s at %s, RELAY_DATA_DIR %s", f.Mounts.Source, f.Mounts.Destination, f.Env["RELAY_DATA_DIR"])
	}
	if f.KillSignal != "SIGTERM" {
		t.Errorf("kill_signal %q: edgerelay drains on SIGTERM", f.KillSignal)
	}
	if kt, err := time.ParseDuration(f.KillTimeout); err != nil || kt <= cfg.ShutdownGrace {
		t.Errorf("kill_timeout %q must exceed RELAY_SHUTDOWN_GRACE %v", f.KillTimeout, cfg.ShutdownGrace)
	}
	// Each listener is a raw TCP service: the public port is Config's
	// default (587, 465), the internal port the one edgerelay listens on
	// (high: nobody cannot bind below 1024 on Fly), with Fly's PROXY
	// header, which RELAY_PROXY_PROTOCOL_FROM trusts, and no TCP check
	// (it would carry no PROXY header: a WARN every interval).
	want := map[int]int{ // internal -> public
		port(cfg.SubmissionAddr):  port(configDefault("SubmissionAddr")),
		port(cfg.SubmissionsAddr): port(configDefault("SubmissionsAddr")),
	}
	if len(f.Services) != len(want) {
		t.Fatalf("%d services, want %d (587 and 465)", len(f.Services), len(want))
	}
	for _, s := range f.Services {
		pub, ok := want[s.InternalPort]
		if !ok || s.Protocol != "tcp" || len(s.Ports) != 1 || s.Ports[0].Port != pub {
			t.Errorf("service internal_port %d protocol %s ports %+v: want tcp, %d -> %d", s.InternalPort, s.Protocol, s.Ports, pub, s.InternalPort)
			continue
		}
		delete(want, s.InternalPort)
		if s.InternalPort < 1024 {
			t.Errorf("internal port %d: uid 65534 cannot bind it on Fly", s.InternalPort)
		}
		if len(s.Ports[0].Handlers) != 1 || s.Ports[0].Handlers[0] != "proxy_proto" || len(cfg.proxies) == 0 {
			t.Errorf("port %d: handlers %v with RELAY_PROXY_PROTOCOL_FROM %q: want proxy_proto and the trusted networks", pub, s.Ports[0].Handlers, cfg.ProxyProtocolFrom)
		}
		if len(s.TCPChecks) > 0 {
			t.Errorf("port %d has a TCP check: it sends no PROXY header and would be logged at WARN every interval", pub)
		}
		// Scale to zero only for an SQS + S3 front end: a machine with
		// the local spool is its own delivery worker, and stopped it
		// delivers and retries nothing.
		stops := s.AutoStopMachines != nil && s.AutoStopMachines != "off" && s.AutoStopMachines != false
		minRunning := 0 // Fly's default
		if s.MinMachinesRunning != nil {
			minRunning = *s.MinMachinesRunning
		}
		if (stops || minRunning < 1) && !(cfg.Queue == QueueSQS && cfg.Role == RoleSubmission) {
			t.Errorf("port %d: auto_stop_machines %v, min_machines_running %d with RELAY_QUEUE %s and RELAY_ROLE %s: only an SQS front end may be stopped", pub, s.AutoStopMachines, minRunning, cfg.Queue, cfg.Role)
		}
		if s.AutoStartMachines == nil || !*s.AutoStartMachines {
			t.Errorf("port %d: auto_start_machines must be true (fly-proxy starts a stopped machine for a client)", pub)
		}
	}
	// The health check is HTTP /healthz on RELAY_HTTP_ADDR's port.
	hc, ok := f.Checks["health"]
	if !ok || hc.Type != "http" || hc.Port != port(cfg.HTTPAddr) || hc.Path != "/healthz" {
		t.Errorf("[checks.health] %+v: want http on port %d, /healthz", hc, port(cfg.HTTPAddr))
	}
	// The scale-to-zero documentation: the settings, and the measured
	// start-up time, the same in fly.toml and the README.
	raw, err := os.ReadFile("fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`auto_stop_machines = "stop"`, "auto_start_machines = true", "min_machines_running = 0", "scripts/bench-start-sqs.sh"} {
		if !strings.Contains(string(raw), w) {
			t.Errorf("fly.toml's scale-to-zero comment lacks %s", w)
		}
	}
	ms := regexp.MustCompile(`(\d+(?:\.\d+)?) ms median from exec`).FindSubmatch(raw)
	if ms == nil {
		t.Fatal("fly.toml does not give the measured start-up time (N ms median from exec …)")
	}
	// The README says what fly.toml does.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		fmt.Sprintf("`%s`", f.Env["RELAY_SUBMISSION_ADDR"]), fmt.Sprintf("`%s`", f.Env["RELAY_SUBMISSIONS_ADDR"]),
		"`/healthz`", "fly ssh sftp shell", "proxy_proto", f.Env["RELAY_PROXY_PROTOCOL_FROM"],
		"fly volumes create " + f.Mounts.Source,
		`auto_stop_machines = "stop"`, "min_machines_running = 0", string(ms[1]) + " ms",
	} {
		if !strings.Contains(string(readme), w) {
			t.Errorf("README's Fly.io section does not mention %s", w)
		}
	}
}
