package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// runConfig runs "edgerelay config ARGS" in-process.
func runConfig(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = configCommand(args, &o, &e)
	return code, o.String(), e.String()
}

// secretFields returns the RELAY_ names of the fields tagged secret.
func secretFields() []string {
	var out []string
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		if f := t.Field(i); f.Tag.Get("secret") == "true" {
			out = append(out, f.Tag.Get("envconfig"))
		}
	}
	return out
}

// TestConfigSecretFieldsTagged: every field that holds a password, a
// client secret or a token is tagged secret, so "edgerelay config" hides
// it; a secret added without the tag fails here.
func TestConfigSecretFieldsTagged(t *testing.T) {
	t.Helper()
	looksSecret := regexp.MustCompile(`(PASSWORD|SECRET|TOKEN|PRIVATE_KEY|API_KEY)$`)
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		if looksSecret.MatchString(name) && f.Tag.Get("secret") != "true" {
			t.Errorf("RELAY_%s holds a secret but is not tagged secret:\"true\"", name)
		}
		if f.Tag.Get("secret") == "true" && f.Type.Kind() != reflect.String {
			t.Errorf("RELAY_%s: only string fields can be secret", name)
		}
	}
	if len(secretFields()) < 5 {
		t.Fatalf("secret fields %v", secretFields())
	}
}

// secretCompanions are the variables a secret needs beside it to make a
// valid configuration: alternatives, the first that validates is used
// (the gateway AUTH rules are changing under issue 12: with XOAUTH2 the
// user name is required there, and without a password refused before).
// A secret added to Config that needs others is added here.
var secretCompanions = map[string][]map[string]string{
	"GATEWAY_PASSWORD":            {{"RELAY_GATEWAY_USERNAME": "relay"}},
	"GATEWAY_OAUTH_CLIENT_SECRET": oauthCompanions,
}

var oauthCompanions = []map[string]string{
	{
		"RELAY_GATEWAY_OAUTH_TOKEN_URL": "https://login.example/token",
		"RELAY_GATEWAY_USERNAME":        "relay@example.org",
		"RELAY_GATEWAY_OAUTH_CLIENT_ID": "client",
		"RELAY_GATEWAY_OAUTH_SCOPE":     "https://outlook.office365.com/.default",
	},
	{
		"RELAY_GATEWAY_OAUTH_TOKEN_URL": "https://login.example/token",
		"RELAY_GATEWAY_OAUTH_CLIENT_ID": "client",
		"RELAY_GATEWAY_OAUTH_SCOPE":     "https://outlook.office365.com/.default",
	},
}

// setValidWith sets the first of alts whose variables, with the
// environment's, make a valid configuration; none: the test fails.
func setValidWith(t *testing.T, alts []map[string]string) {
	t.Helper()
	if len(alts) == 0 {
		return
	}
	var errs []string
	for _, alt := range alts {
		var restore []func()
		for k, v := range alt {
			old, had := os.LookupEnv(k)
			os.Setenv(k, v)
			restore = append(restore, func() {
				if had {
					os.Setenv(k, old)
				} else {
					os.Unsetenv(k)
				}
			})
		}
		_, err := loadConfig()
		for _, r := range restore {
			r()
		}
		if err == nil {
			for k, v := range alt {
				t.Setenv(k, v)
			}
			return
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("no companion set validates:\n%s", strings.Join(errs, "\n--\n"))
}

// TestConfigCommandSecretsNeverPrinted: each secret field set to a marker
// value, directly and then through its _FILE variable, in a valid
// configuration and in an invalid one: the marker appears in neither the
// text nor the JSON output (stdout or stderr), and the secret shows as
// (set); a password in a URL of a non-secret value is hidden too.
func TestConfigCommandSecretsNeverPrinted(t *testing.T) {
	for _, name := range secretFields() {
		for _, viaFile := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/file=%v", name, viaFile), func(t *testing.T) {
				clearRelayEnv(t)
				dir := t.TempDir()
				t.Setenv("RELAY_DATA_DIR", dir)
				t.Setenv("RELAY_HOSTNAME", "relay.example.org")
				t.Setenv("RELAY_GATEWAY", "gw.example.net:587")
				t.Setenv("RELAY_OIDC_ISSUER", "https://someone:URLMARKER-pw@issuer.example/")
				m := "MARKER-" + name + "-x9"
				if viaFile {
					p := filepath.Join(dir, "secret")
					if err := os.WriteFile(p, []byte(m+"\n"), 0o600); err != nil {
						t.Fatal(err)
					}
					t.Setenv("RELAY_"+name+"_FILE", p)
				} else {
					t.Setenv("RELAY_"+name, m)
				}
				setValidWith(t, secretCompanions[name])
				code, text, textErr := runConfig(t)
				if code != 0 {
					t.Fatalf("exit %d: %s", code, textErr)
				}
				code, js, jsErr := runConfig(t, "--json")
				if code != 0 {
					t.Fatalf("--json exit %d: %s", code, jsErr)
				}
				t.Setenv("RELAY_LOG_LEVEL", "loud") // invalid: the error names the variable, not the secret
				_, badOut, badErr := runConfig(t)
				all := text + textErr + js + jsErr + badOut + badErr
				if strings.Contains(all, "MARKER") {
					t.Errorf("RELAY_%s's value was printed", name)
				}
				want := fmt.Sprintf("RELAY_%s=(set) (set)\n", name)
				if viaFile {
					want = fmt.Sprintf("RELAY_%s=(set) (from RELAY_%s_FILE)\n", name, name)
				}
				if !strings.Contains(text, want) {
					t.Errorf("output lacks %q", want)
				}
				if strings.Contains(all, "URLMARKER") || !strings.Contains(text, "RELAY_OIDC_ISSUER=https://someone:(hidden)@issuer.example/ (set)") {
					t.Errorf("a password in a URL was printed:\n%s", text)
				}
				var vars []configVar
				dec := json.NewDecoder(strings.NewReader(js))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&vars); err != nil {
					t.Fatal(err)
				}
				for _, v := range vars {
					if v.Name == "RELAY_"+name && (!v.Secret || v.Value != "(set)" || v.Default || (v.From != "") != viaFile) {
						t.Errorf("%+v", v)
					}
				}
			})
		}
	}
}

// TestConfigCommandDefaultsMarked: every variable is listed once, in
// text and JSON alike; what the environment sets is (set), the rest
// (default) with its effective value (derived ones filled in).
func TestConfigCommandDefaultsMarked(t *testing.T) {
	clearRelayEnv(t)
	dir := t.TempDir()
	t.Setenv("RELAY_DATA_DIR", dir)
	t.Setenv("RELAY_HOSTNAME", "relay.example.org")
	t.Setenv("RELAY_RETRY_SCHEDULE", "1m,1h")
	t.Setenv("RELAY_LDAP_FILTER", "(uid={user})")
	code, text, stderr := runConfig(t)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"RELAY_HOSTNAME=relay.example.org (set)\n",
		"RELAY_SUBMISSION_ADDR=:587 (default)\n",
		"RELAY_QUEUE_LIFETIME=120h (default)\n",
		"RELAY_SQS_VISIBILITY_TIMEOUT=1m (default)\n",
		"RELAY_RETRY_SCHEDULE=1m,1h (set)\n",
		"RELAY_CHECK_HEADER_FROM=true (default)\n",
		"RELAY_MAX_MESSAGE_BYTES=26214400 (default)\n",
		"RELAY_DATA_DIR=" + dir + " (set)\n",
		"RELAY_AUTH_FILE=" + filepath.Join(dir, "users") + " (default)\n",
		"RELAY_ADMIN_TOKEN= (default)\n",
		`RELAY_LDAP_FILTER=(uid={user}) (set)` + "\n",
		`RELAY_LDAP_ADDRESS_ATTRS=mail,mailAlternateAddress (default)` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(configNames()) {
		t.Errorf("%d lines for %d variables", len(lines), len(configNames()))
	}
	for i, name := range configNames() {
		if i < len(lines) && !strings.HasPrefix(lines[i], "RELAY_"+name+"=") {
			t.Errorf("line %d is %q, want RELAY_%s", i, lines[i], name)
		}
	}
	_, js, _ := runConfig(t, "--json")
	var vars []configVar
	if err := json.Unmarshal([]byte(js), &vars); err != nil {
		t.Fatal(err)
	}
	if len(vars) != len(configNames()) {
		t.Fatalf("%d JSON objects for %d variables", len(vars), len(configNames()))
	}
	set := map[string]bool{"RELAY_HOSTNAME": true, "RELAY_DATA_DIR": true, "RELAY_RETRY_SCHEDULE": true, "RELAY_LDAP_FILTER": true}
	for _, v := range vars {
		if v.Default == set[v.Name] {
			t.Errorf("%s: default=%v", v.Name, v.Default)
		}
	}
}

// TestConfigCommandInvalid: an invalid configuration exits non-zero with
// exactly the lines startup prints (serveMain stops there), and nothing on
// stdout, with --json too.
func TestConfigCommandInvalid(t *testing.T) {
	clearRelayEnv(t)
	t.Setenv("RELAY_DATA_DIR", t.TempDir())
	t.Setenv("RELAY_MAX_RECIPIENTS", "many")
	t.Setenv("RELAY_QUEUE", "kafka")
	t.Setenv("RELAY_GATEWAY_PASSWORD_FILE", "/nonexistent/edgerelay-pw")
	t.Setenv("RELAY_LOG_LEVEL", "loud")
	var startup bytes.Buffer
	startCode := serveMain(&startup)
	if startCode == 0 || !strings.Contains(startup.String(), "RELAY_MAX_RECIPIENTS") {
		t.Fatalf("startup: exit %d, %q", startCode, startup.String())
	}
	for _, args := range [][]string{nil, {"--json"}} {
		code, stdout, stderr := runConfig(t, args...)
		if code != startCode || stdout != "" || stderr != startup.String() {
			t.Errorf("config %v: exit %d (startup %d), stdout %q, stderr:\n%s\nstartup printed:\n%s", args, code, startCode, stdout, stderr, startup.String())
		}
	}
	for _, want := range []string{"RELAY_MAX_RECIPIENTS: ", "RELAY_QUEUE: ", "RELAY_GATEWAY_PASSWORD_FILE: ", "RELAY_LOG_LEVEL: "} {
		if !strings.Contains(startup.String(), "\n"+want) {
			t.Errorf("no line starting %q in %q", want, startup.String())
		}
	}
	if code, _, stderr := runConfig(t, "--yaml"); code != 2 || !strings.Contains(stderr, "usage") {
		t.Errorf("unknown flag: exit %d, %q", code, stderr)
	}
}

// TestConfigCommandUnknownVariable: a RELAY_ variable edgerelay does not
// read is named on stderr (a misspelling is otherwise silent); the exit
// status is still that of the configuration, as at startup.
func TestConfigCommandUnknownVariable(t *testing.T) {
	clearRelayEnv(t)
	t.Setenv("RELAY_DATA_DIR", t.TempDir())
	t.Setenv("RELAY_GATEWAY_PASWORD", "x")
	code, stdout, stderr := runConfig(t)
	if code != 0 || !strings.Contains(stderr, "RELAY_GATEWAY_PASWORD is set, but edgerelay reads no such variable") || strings.Contains(stdout, "PASWORD") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// recordingListener accepts on a loopback address and counts what
// arrives.
func recordingListener(t *testing.T, network, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l, &n
}

// TestConfigCommandNoNetwork: with every endpoint configured (LDAP, OIDC,
// the OAuth2 token URL, gateways, clamd over TCP and a Unix socket, the
// inbound gateway, SQS and the AWS endpoint, the ACME directory) pointing
// at loopback listeners that count connections, and names that would need
// DNS elsewhere, "edgerelay config" accepts no connection, makes no DNS
// query (net.DefaultResolver replaced by one whose every dial is counted
// and refused) and returns at once.
func TestConfigCommandNoNetwork(t *testing.T) {
	clearRelayEnv(t)
	dir := t.TempDir()
	tcp, tcpHits := recordingListener(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(dir, "clamd.sock")
	_, unixHits := recordingListener(t, "unix", sock)
	a := tcp.Addr().String()
	var lookups atomic.Int32
	saved := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		lookups.Add(1)
		return nil, errors.New("no DNS in this test")
	}}
	t.Cleanup(func() { net.DefaultResolver = saved })

	env := map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HOSTNAME": "relay.example.org",
		"RELAY_AUTH": "ldap,oidc,file", "RELAY_LDAP_URL": "ldap://" + a, "RELAY_LDAP_BASE_DN": "dc=example,dc=org",
		"RELAY_OIDC_ISSUER": "http://" + a + "/realms/x", "RELAY_OIDC_AUDIENCE": "edgerelay", "RELAY_OIDC_ALLOWED_DOMAINS": "example.org",
		"RELAY_OIDC_PASSWORD_GRANT": "true", "RELAY_OIDC_CLIENT_ID": "c",
		"RELAY_GATEWAY":                 "gateway.example.net:587",
		"RELAY_GATEWAY_OAUTH_TOKEN_URL": "http://" + a + "/token", "RELAY_GATEWAY_OAUTH_CLIENT_ID": "c",
		"RELAY_GATEWAY_OAUTH_CLIENT_SECRET": "s", "RELAY_GATEWAY_OAUTH_SCOPE": "https://outlook.office365.com/.default",
		"RELAY_CLAMD_ADDR": "unix://" + sock, "RELAY_MX_ADDR": "127.0.0.1:0", "RELAY_LOCAL_DOMAINS": "example.org",
		"RELAY_INBOUND_GATEWAY": "lmtp://" + a,
		"RELAY_QUEUE":           "sqs", "RELAY_SQS_QUEUE_URL": "http://" + a + "/000000000000/q", "RELAY_S3_BUCKET": "b",
		"RELAY_BOUNCE_STORE": "s3://b/bounces", "AWS_ENDPOINT_URL": "http://" + a, "AWS_REGION": "us-east-1",
		"RELAY_ACME": "true", "RELAY_ACME_DIRECTORY": "https://" + a + "/dir", "RELAY_ACME_CHALLENGE": "dns-01",
		"RELAY_ACME_ROUTE53_ZONE_ID": "Z1", "RELAY_ACME_DOMAINS": "smtp.example.org",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	alts := []map[string]string{}
	for _, alt := range oauthCompanions {
		m := map[string]string{}
		for k, v := range alt {
			m[k] = v
		}
		m["RELAY_GATEWAY_OAUTH_TOKEN_URL"] = "http://" + a + "/token"
		alts = append(alts, m)
	}
	setValidWith(t, alts)
	start := time.Now()
	code, _, stderr := runConfig(t)
	code2, _, stderr2 := runConfig(t, "--json")
	took := time.Since(start)
	if code != 0 || code2 != 0 {
		t.Fatalf("exit %d/%d: %s%s", code, code2, stderr, stderr2)
	}
	// Anything that dialled would have been accepted by now; a short wait
	// lets a connection in flight be counted.
	time.Sleep(50 * time.Millisecond)
	if n := tcpHits.Load() + unixHits.Load(); n != 0 {
		t.Errorf("%d connections to the configured endpoints", n)
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d DNS lookups", n)
	}
	if took > 5*time.Second {
		t.Errorf("took %v", took)
	}
	t.Logf("two runs in %v", took)
}

// FuzzConfigValue: a value, whatever its bytes, prints as one line of
// printable text that reads back as the value with URL passwords hidden,
// and a URL password never survives.
func FuzzConfigValue(f *testing.F) {
	for _, s := range []string{"", ":587", "a b", "smtp://u:pw@h:587,smtps://v:p2@h2", "x\x00y", "\xff\xfe", "\x1b[31mred", strings.Repeat("a://b:c@", 1000), "ldap://u:@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		done := make(chan string, 1)
		go func() { done <- quoteValue(redactURLPasswords(s)) }()
		var out string
		select {
		case out = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("hang on %d bytes", len(s))
		}
		for _, r := range out {
			if r == '\n' || r == '\r' || !unicode.IsPrint(r) && r != ' ' {
				t.Fatalf("%q prints as %q", s, out)
			}
		}
		if !utf8.ValidString(out) {
			t.Fatalf("%q prints as invalid UTF-8", s)
		}
		back := out
		if strings.HasPrefix(out, `"`) {
			var err error
			if back, err = strconv.Unquote(out); err != nil {
				t.Fatalf("%q: %v", out, err)
			}
		}
		if back != redactURLPasswords(s) {
			t.Fatalf("%q reads back as %q", s, back)
		}
		for _, m := range urlPassword.FindAllString(back, -1) {
			if !strings.HasSuffix(m, ":(hidden)@") {
				t.Fatalf("%q keeps a URL password: %q in %q", s, m, back)
			}
		}
	})
}
