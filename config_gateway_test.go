package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/outbound"
)

func TestParseGatewayURL(t *testing.T) {
	for in, want := range map[string]gatewayURL{
		"gw.example.net:2525":       {URL: "gw.example.net:2525", Host: "gw.example.net", Addr: "gw.example.net:2525"},
		"smtp://Relay.Example.NET":  {URL: "smtp://relay.example.net:587", Scheme: "smtp", Host: "relay.example.net", Addr: "relay.example.net:587"},
		"SMTPS://relay.example:465": {URL: "smtps://relay.example:465", Scheme: "smtps", Host: "relay.example", Addr: "relay.example:465"},
		"smtps://relay.example":     {URL: "smtps://relay.example:465", Scheme: "smtps", Host: "relay.example", Addr: "relay.example:465"},
		"smtp+insecure://127.0.0.1": {URL: "smtp+insecure://127.0.0.1:25", Scheme: "smtp+insecure", Host: "127.0.0.1", Addr: "127.0.0.1:25"},
		"smtp+insecure://[::1]:26":  {URL: "smtp+insecure://[::1]:26", Scheme: "smtp+insecure", Host: "::1", Addr: "[::1]:26"},
		"smtp://[2001:db8::1]":      {URL: "smtp://[2001:db8::1]:587", Scheme: "smtp", Host: "2001:db8::1", Addr: "[2001:db8::1]:587"},
		"ses://":                    {URL: "ses://", Scheme: "ses"},
		"ses://eu-west-1":           {URL: "ses://eu-west-1", Scheme: "ses", Region: "eu-west-1"},
		"ses://us-gov-west-1":       {URL: "ses://us-gov-west-1", Scheme: "ses", Region: "us-gov-west-1"},
	} {
		got, err := parseGatewayURL(in)
		if err != nil || got != want {
			t.Errorf("parseGatewayURL(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, why := range map[string]string{
		"gw.example.net":                      "not host:port",
		"lmtp://gw:24":                        "unknown scheme",
		"http://gw":                           "unknown scheme",
		"smtp://user:hunter2@gw:587":          "no user or password",
		"smtp://gw:587/path":                  "no path",
		"smtp://gw:587?auth=hunter2":          "no path",
		"smtp://gw:0":                         "port",
		"smtp://gw:65536":                     "port",
		"smtp://gw:08":                        "port",
		"smtp://gw:smtp":                      "port",
		"smtp://":                             "host",
		"smtp://gw..example":                  "host",
		"smtp://-gw":                          "host",
		"smtp://[fe80::1%25eth0]:25":          "host",
		"smtp://g w":                          "white space",
		"smtp://gw\x00":                       "control",
		"smtp://gw\xff":                       "control",
		"ses://EU-WEST-1":                     "region",
		"ses://mars":                          "region",
		"ses://eu-west-1.amazonaws.com":       "region",
		"ses://eu-west-1/":                    "path",
		"smtps://" + strings.Repeat("a", 300): "host",
	} {
		_, err := parseGatewayURL(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseGatewayURL(%q) = %v, want an error about %s", in, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestParseGatewayListAndRoutes(t *testing.T) {
	l, err := parseGatewayList("smtp://a.example, smtps://b.example:465 ,ses://eu-west-1", ",")
	if err != nil || len(l) != 3 || l[1].URL != "smtps://b.example:465" {
		t.Fatalf("list %+v, %v", l, err)
	}
	for in, why := range map[string]string{
		"smtp://a.example,":                             "entry 2 is empty",
		",smtp://a.example":                             "entry 1 is empty",
		"smtp://a.example,smtp://A.example:587":         "twice",
		"smtp://a.example:25,smtp+insecure://a.example": "twice",
	} {
		if _, err := parseGatewayList(in, ","); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseGatewayList(%q) = %v, want %s", in, err, why)
		}
	}
	r, err := parseRoutes("Example.ORG=ses://eu-west-1, bücher.example = smtps://r1.example|smtps://r2.example")
	if err != nil || len(r) != 2 || r[0].Domain != "example.org" || r[1].Domain != "xn--bcher-kva.example" || len(r[1].List) != 2 {
		t.Fatalf("routes %+v, %v", r, err)
	}
	for in, why := range map[string]string{
		"example.org":       "want domain=gateway",
		"example.org=":      "empty",
		"=smtp://a.example": "not a domain",
		"a.example=smtp://x.example,A.EXAMPLE=smtp://y.example": "two routes",
		"a.example=smtp://x.example|smtp://x.example":           "twice",
		"a.example=smtp://x.example,":                           "entry 2 is empty",
		"[127.0.0.1]=smtp://x.example":                          "not a domain",
		"a.example=smtp://u:hunter2@x.example":                  "no user",
	} {
		_, err := parseRoutes(in)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseRoutes(%q) = %v, want %s", in, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestParseGatewayCreds(t *testing.T) {
	c, err := parseGatewayCreds(strings.NewReader("# host user password\n\n  # indented comment\r\n" +
		"Relay2.example.net\trelay@example.org   s3cret\r\n[relay3.example]:465 other pa55\n[::1]:25 lo pw\nrelay3.example u p"))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"relay2.example.net": "relay@example.org/s3cret", "relay3.example:465": "other/pa55", "[::1]:25": "lo/pw", "relay3.example": "u/p"} {
		if e := c[key]; e.user+"/"+e.password != want {
			t.Errorf("%s: %+v, want %s", key, e, want)
		}
	}
	g, _ := parseGatewayURL("smtps://relay3.example")
	if e, _ := c.lookup(g); e.user != "other" {
		t.Errorf("lookup %s = %+v: host:port wins over host", g.URL, e)
	}
	for in, why := range map[string]string{
		"relay.example user":                           "found 2 fields",
		"relay.example user pass word":                 "found 4 fields",
		"relay.example user pa\x00ss":                  "control character",
		"relay.example:0 user hunter2":                 "not a host name",
		"relay..example user hunter2":                  "not a host name",
		"a.example u p\nA.example v hunter2":           "line 2: the host is listed on line 1",
		strings.Repeat("x", 5000) + " u p":             "line 1 is longer",
		"ok.example u p\n" + strings.Repeat("y", 4097): "line 2 is longer",
	} {
		_, err := parseGatewayCreds(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseGatewayCreds(%.40q) = %v, want %s", in, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

// credsFile writes content to a file of mode perm.
func credsFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sasl_passwd")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// gatewayConfigErrors are the refused gateway values of
// TestConfigErrorsNameTheVariable: each stops the start with a line naming
// its variable, and none shows a password (hunter2).
func gatewayConfigErrors(t *testing.T) []struct {
	env  map[string]string
	want []string
} {
	writable := credsFile(t, "gw.example u hunter2\n", 0o666)
	creds := credsFile(t, "gw.example u hunter2\n127.0.0.1 u hunter2\n", 0o600)
	return []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RELAY_GATEWAY": "ftp://gw.example"}, []string{"RELAY_GATEWAY:", "unknown scheme"}},
		{map[string]string{"RELAY_GATEWAY": "smtp://u:hunter2@gw.example"}, []string{"RELAY_GATEWAY:", "RELAY_GATEWAY_CREDENTIALS_FILE"}},
		{map[string]string{"RELAY_GATEWAY": "smtp://a.example,,smtp://b.example"}, []string{"RELAY_GATEWAY:", "entry 2 is empty"}},
		{map[string]string{"RELAY_GATEWAY": "smtp://a.example,smtp://a.example:587"}, []string{"RELAY_GATEWAY:", "twice"}},
		{map[string]string{"RELAY_GATEWAY": "smtp+insecure://gw.example"}, []string{"RELAY_GATEWAY:", "RELAY_GATEWAY_ALLOW_INSECURE"}},
		{map[string]string{"RELAY_GATEWAY": "ses://moon-1"}, []string{"RELAY_GATEWAY:", "region"}},
		{map[string]string{"RELAY_ROUTES": "example.org=smtp+insecure://gw.example"}, []string{"RELAY_ROUTES:", "RELAY_GATEWAY_ALLOW_INSECURE"}},
		{map[string]string{"RELAY_ROUTES": "example.org"}, []string{"RELAY_ROUTES:", "domain=gateway"}},
		{map[string]string{"RELAY_GATEWAY_BACKOFF": "10ms"}, []string{"RELAY_GATEWAY_BACKOFF"}},
		{map[string]string{"RELAY_GATEWAY_CREDENTIALS_FILE": writable}, []string{"RELAY_GATEWAY_CREDENTIALS_FILE:", "writable by group or others"}},
		{map[string]string{"RELAY_GATEWAY_CREDENTIALS_FILE": "/nonexistent/sasl"}, []string{"RELAY_GATEWAY_CREDENTIALS_FILE:", "no such file"}},
		{map[string]string{"RELAY_GATEWAY": "smtp://a.example,smtp+insecure://127.0.0.1", "RELAY_GATEWAY_CREDENTIALS_FILE": creds},
			[]string{"RELAY_GATEWAY_CREDENTIALS_FILE:", "smtp+insecure://127.0.0.1:25", "in clear"}},
		{map[string]string{"RELAY_GATEWAY": "smtp+insecure://127.0.0.1:2525", "RELAY_GATEWAY_USERNAME": "u", "RELAY_GATEWAY_PASSWORD": "hunter2"},
			[]string{"RELAY_GATEWAY_USERNAME:", "in clear"}},
		{map[string]string{"RELAY_GATEWAY": "ses://", "RELAY_GATEWAY_USERNAME": "u", "RELAY_GATEWAY_PASSWORD": "hunter2"},
			[]string{"RELAY_GATEWAY_USERNAME:", "no SMTP gateway"}},
	}
}

// TestGatewayConfigBuilt: a valid configuration becomes the worker's lists
// with the right TLS modes and credentials: RELAY_GATEWAY_USERNAME for the
// first SMTP gateway, the credentials file by host for the others.
func TestGatewayConfigBuilt(t *testing.T) {
	creds := credsFile(t, "b.example fileuser filepass\nr.example ruser rpass\n", 0o640)
	t.Setenv("RELAY_GATEWAY", "smtp://a.example, smtps://b.example, smtp+insecure://127.0.0.1:2525, c.example:25")
	t.Setenv("RELAY_GATEWAY_TLS", "tls")
	t.Setenv("RELAY_GATEWAY_USERNAME", "envuser")
	t.Setenv("RELAY_GATEWAY_PASSWORD", "envpass")
	t.Setenv("RELAY_GATEWAY_CREDENTIALS_FILE", creds)
	t.Setenv("RELAY_ROUTES", "Partner.example=smtps://r.example|smtp://s.example")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	main, routes, err := cfg.outboundGateways(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := func(g outbound.GatewayConfig) string {
		return fmt.Sprintf("%s %s %s %s/%s", g.URL, g.Addr, g.TLS, g.Auth.Username, g.Auth.Password)
	}
	want := []string{
		"smtp://a.example:587 a.example:587 starttls envuser/envpass",
		"smtps://b.example:465 b.example:465 tls fileuser/filepass",
		"smtp+insecure://127.0.0.1:2525 127.0.0.1:2525 none /",
		"c.example:25 c.example:25 tls /",
	}
	if len(main) != len(want) {
		t.Fatalf("main list %+v", main)
	}
	for i := range want {
		if got(main[i]) != want[i] || !main[i].TLSVerify {
			t.Errorf("gateway %d: %s (verify %v), want %s", i, got(main[i]), main[i].TLSVerify, want[i])
		}
	}
	r := routes["partner.example"]
	if len(routes) != 1 || len(r) != 2 || got(r[0]) != "smtps://r.example:465 r.example:465 tls ruser/rpass" || r[1].Auth.Username != "" {
		t.Fatalf("routes %+v", routes)
	}
}
