package main

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README configuration table from Config")

// configTable renders the README table from Config's tags.
func configTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		def := f.Tag.Get("default")
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s_%s` | %s | %s |\n", envPrefix, name, def, strings.ReplaceAll(f.Tag.Get("desc"), "|", "\\|"))
	}
	return b.String()
}

const (
	tableBegin = "<!-- config-table:begin (generated from config.go: go test -run TestREADMEConfigTable -update-readme) -->\n"
	tableEnd   = "<!-- config-table:end -->"
)

// TestREADMEConfigTable keeps the README's configuration table and the
// Config struct in step: every variable documented, none invented.
func TestREADMEConfigTable(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the config table markers")
	}
	want := configTable()
	got := readme[i+len(tableBegin) : j]
	if got != want {
		if *updateREADME {
			os.WriteFile("README.md", []byte(readme[:i+len(tableBegin)]+want+readme[j:]), 0o644)
			return
		}
		t.Fatalf("README configuration table is out of date; run: go test -run TestREADMEConfigTable -update-readme")
	}
	// Every RELAY_ variable the README mentions anywhere must exist.
	known := map[string]bool{}
	for _, m := range regexp.MustCompile("`(RELAY_[A-Z0-9_]+)`").FindAllStringSubmatch(want, -1) {
		known[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\bRELAY_[A-Z0-9_]+`).FindAllString(readme, -1) {
		if !known[m] {
			t.Errorf("README mentions %s, which Config does not have", m)
		}
	}
}

func TestConfigDefaultsValid(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RELAY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	c, err := loadConfig()
	if err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if c.SubmissionAddr != ":587" || c.SubmissionsAddr != ":465" || c.MaxMessageBytes != 26214400 || !c.CheckHeaderFrom || !c.BounceToSender {
		t.Fatalf("defaults: %+v", c)
	}
	if !strings.HasSuffix(c.AuthFile, "/data/users") || !strings.HasPrefix(c.BounceStore, "maildir:") {
		t.Fatalf("derived defaults: %s %s", c.AuthFile, c.BounceStore)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RELAY_MAX_RECIPIENTS": "many"}, []string{"RELAY_MAX_RECIPIENTS"}},
		{map[string]string{"RELAY_QUEUE_LIFETIME": "forever"}, []string{"RELAY_QUEUE_LIFETIME"}},
		{map[string]string{"RELAY_INSECURE_AUTH": "perhaps"}, []string{"RELAY_INSECURE_AUTH"}},
		{map[string]string{"RELAY_QUEUE": "kafka"}, []string{"RELAY_QUEUE"}},
		{map[string]string{"RELAY_ROLE": "worker"}, []string{"RELAY_ROLE", "RELAY_QUEUE=sqs"}},
		{map[string]string{"RELAY_QUEUE": "sqs"}, []string{"RELAY_SQS_QUEUE_URL", "RELAY_S3_BUCKET"}},
		{map[string]string{"RELAY_AUTH": "ldap"}, []string{"RELAY_LDAP_URL", "RELAY_LDAP_BASE_DN"}},
		{map[string]string{"RELAY_AUTH": "oidc"}, []string{"RELAY_OIDC_ISSUER", "RELAY_OIDC_AUDIENCE"}},
		{map[string]string{"RELAY_AUTH": "oidc", "RELAY_OIDC_ISSUER": "https://accounts.google.com", "RELAY_OIDC_AUDIENCE": "a"}, []string{"RELAY_OIDC_ALLOWED_DOMAINS", "RELAY_OIDC_ALLOWED_TENANTS", "shared"}},
		{map[string]string{"RELAY_AUTH": "oidc", "RELAY_OIDC_ISSUER": "https://login.microsoftonline.com/common/v2.0", "RELAY_OIDC_AUDIENCE": "a"}, []string{"RELAY_OIDC_ALLOWED_DOMAINS"}},
		{map[string]string{"RELAY_AUTH": "oidc", "RELAY_OIDC_ISSUER": "https://login.microsoftonline.com/organizations/v2.0", "RELAY_OIDC_AUDIENCE": "a", "RELAY_OIDC_ALLOWED_DOMAINS": "example.org"}, []string{"RELAY_OIDC_ALLOWED_TENANTS", "email claim"}},
		{map[string]string{"RELAY_AUTH": "file,kerberos"}, []string{"RELAY_AUTH", "kerberos"}},
		{map[string]string{"RELAY_GATEWAY": "no-port"}, []string{"RELAY_GATEWAY"}},
		{map[string]string{"RELAY_GATEWAY_TLS": "maybe"}, []string{"RELAY_GATEWAY_TLS"}},
		{map[string]string{"RELAY_MX_ALLOW_PRIVATE": "internal"}, []string{"RELAY_MX_ALLOW_PRIVATE"}},
		{map[string]string{"RELAY_GATEWAY": "gw:587", "RELAY_GATEWAY_USERNAME": "u", "RELAY_GATEWAY_PASSWORD": "p", "RELAY_GATEWAY_TLS": "none"}, []string{"RELAY_GATEWAY_TLS", "in clear"}},
		{map[string]string{"RELAY_RETRY_SCHEDULE": "5m,soon"}, []string{"RELAY_RETRY_SCHEDULE", "soon"}},
		{map[string]string{"RELAY_BOUNCE_STORE": "/var/bounces"}, []string{"RELAY_BOUNCE_STORE"}},
		{map[string]string{"RELAY_TLS_CERT_FILE": "/x.pem"}, []string{"RELAY_TLS_CERT_FILE"}},
		{map[string]string{"RELAY_LOG_LEVEL": "loud"}, []string{"RELAY_LOG_LEVEL"}},
		{map[string]string{"RELAY_PROXY_PROTOCOL_FROM": "10.0.0.0/8,fly"}, []string{"RELAY_PROXY_PROTOCOL_FROM", "fly"}},
		{map[string]string{"RELAY_PREAUTH_TIMEOUT": "100ms"}, []string{"RELAY_PREAUTH_TIMEOUT"}},
		{map[string]string{"RELAY_FROM_DISPLAY_NAME_ADDRESS": "warn"}, []string{"RELAY_FROM_DISPLAY_NAME_ADDRESS", "refuse or allow"}},
		{map[string]string{"RELAY_GATEWAY_PASSWORD_FILE": "/nonexistent/secret"}, []string{"RELAY_GATEWAY_PASSWORD_FILE", "no such file"}},
		{map[string]string{"RELAY_SUBMISSION_ADDR": "", "RELAY_SUBMISSIONS_ADDR": ""}, []string{"RELAY_SUBMISSION_ADDR"}},
		{map[string]string{"RELAY_PPROF": "true", "RELAY_HTTP_ADDR": ""}, []string{"RELAY_PPROF", "RELAY_HTTP_ADDR"}},
	}
	tests = append(tests, gatewayConfigErrors(t)...) // config_gateway_test.go
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

// TestConfigErrorOrderStable: several errors print in one fixed order, run
// after run (validation walks slices, not maps, whose order Go randomises).
func TestConfigErrorOrderStable(t *testing.T) {
	t.Setenv("RELAY_SUBMISSION_ADDR", "no-port")
	t.Setenv("RELAY_HTTP_ADDR", "also-no-port")
	t.Setenv("RELAY_LDAP_BIND_PASSWORD_FILE", "/nonexistent/ldap-secret")
	t.Setenv("RELAY_GATEWAY_PASSWORD_FILE", "/nonexistent/gateway-secret")
	var first string
	for i := 0; i < 50; i++ {
		_, err := loadConfig()
		if err == nil {
			t.Fatal("no error")
		}
		if i == 0 {
			first = err.Error()
			continue
		}
		if err.Error() != first {
			t.Fatalf("run %d: errors in another order:\n%s\nfirst run:\n%s", i, err, first)
		}
	}
	for _, pair := range [][2]string{
		{"RELAY_SUBMISSION_ADDR", "RELAY_HTTP_ADDR"},
		{"RELAY_LDAP_BIND_PASSWORD_FILE", "RELAY_GATEWAY_PASSWORD_FILE"},
	} {
		a, b := strings.Index(first, pair[0]+":"), strings.Index(first, pair[1]+":")
		if a < 0 || b < 0 || a > b {
			t.Errorf("want %s before %s in:\n%s", pair[0], pair[1], first)
		}
	}
}

func TestSecretFromFile(t *testing.T) {
	f := t.TempDir() + "/pw"
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	t.Setenv("RELAY_GATEWAY", "gw.example.net:587")
	t.Setenv("RELAY_GATEWAY_USERNAME", "relay")
	t.Setenv("RELAY_GATEWAY_PASSWORD_FILE", f)
	c, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.GatewayPassword != "s3cret" {
		t.Fatalf("password %q", c.GatewayPassword)
	}
}

// TestFlyTomlConfig: the variables fly.toml sets exist and, with the
// secret it documents, make a valid configuration.
func TestFlyTomlConfig(t *testing.T) {
	raw, err := os.ReadFile("fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile("`(RELAY_[A-Z0-9_]+)`").FindAllStringSubmatch(configTable(), -1) {
		known[m[1]] = true
	}
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^\s*(RELAY_[A-Z0-9_]+)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1) {
		if !known[m[1]] {
			t.Errorf("fly.toml sets %s, which Config does not have", m[1])
		}
		t.Setenv(m[1], m[2])
		n++
	}
	if n == 0 {
		t.Fatal("no RELAY_ variables found in fly.toml")
	}
	t.Setenv("RELAY_GATEWAY_PASSWORD", "from fly secrets")
	t.Setenv("RELAY_DATA_DIR", t.TempDir())
	if _, err := loadConfig(); err != nil {
		t.Fatalf("fly.toml's configuration does not validate: %v", err)
	}
}
