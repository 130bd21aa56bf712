package deploy

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The subset of the Compose specification (compose-spec.io, its JSON
// schema's names and forms) that compose.yaml uses. compose-spec's Go
// library (compose-go) is not available here, so these types stand in
// for it, and yaml.v3's KnownFields refuses any key they do not have: a
// misspelt or misplaced key fails instead of being ignored as Compose
// would warn.
type composeFile struct {
	Name     string                       `yaml:"name"`
	Services map[string]composeService    `yaml:"services"`
	Volumes  map[string]composeVolume     `yaml:"volumes"`
	Secrets  map[string]composeSecretFile `yaml:"secrets"`
	Configs  map[string]composeSecretFile `yaml:"configs"`
}

type composeService struct {
	Build           *composeBuild     `yaml:"build"`
	Image           string            `yaml:"image"`
	Profiles        []string          `yaml:"profiles"`
	Restart         string            `yaml:"restart"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	Ports           []string          `yaml:"ports"`
	Environment     map[string]string `yaml:"environment"`
	Volumes         []string          `yaml:"volumes"`
	Secrets         []string          `yaml:"secrets"`
	ReadOnly        bool              `yaml:"read_only"`
	CapDrop         []string          `yaml:"cap_drop"`
	SecurityOpt     []string          `yaml:"security_opt"`
	User            string            `yaml:"user"`
	DependsOn       []string          `yaml:"depends_on"`
}

type composeBuild struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

type composeVolume struct {
	Driver string `yaml:"driver"`
}

type composeSecretFile struct {
	File string `yaml:"file"`
}

// interpolate applies Compose's ${VAR:-default} to s's lines that are not
// comments, with vars (unset: the default), refusing the other forms,
// which the file does not use.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`\$\{([A-Z0-9_]+)(:-([^}]*))?\}`)
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		lines[i] = re.ReplaceAllStringFunc(line, func(m string) string {
			g := re.FindStringSubmatch(m)
			if v, ok := vars[g[1]]; ok {
				return v
			}
			if g[2] == "" {
				t.Errorf("%s has no default", m)
			}
			return g[3]
		})
		if strings.Contains(strings.ReplaceAll(lines[i], "$$", ""), "$") {
			t.Errorf("line %d: an interpolation form this test does not know: %q", i+1, line)
		}
	}
	return strings.Join(lines, "\n")
}

func loadCompose(t *testing.T, vars map[string]string) composeFile {
	t.Helper()
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(interpolate(t, string(raw), vars)))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f
}

// TestComposeStrict: compose.yaml decodes into the schema subset with no
// unknown key (and the decoder does refuse one), and a typo is caught.
func TestComposeStrict(t *testing.T) {
	loadCompose(t, nil)
	dec := yaml.NewDecoder(strings.NewReader("services:\n  edgerelay:\n    enviroment: {}\n"))
	dec.KnownFields(true)
	var f composeFile
	if err := dec.Decode(&f); err == nil {
		t.Fatal("a misspelt key was accepted")
	}
}

// TestComposeFile: edgerelay's service, without and with the clamav
// profile: its configuration is valid, its published ports are the ones
// it listens on (587, 465, and HTTP on loopback only), every secret it
// names is a Compose secret mounted where the variable says, the data
// volume is at RELAY_DATA_DIR, stop_grace_period exceeds
// RELAY_SHUTDOWN_GRACE, images are pinned (no latest), and clamd, under
// its profile only, is what RELAY_CLAMD_ADDR reaches.
func TestComposeFile(t *testing.T) {
	for _, clam := range []bool{false, true} {
		vars := map[string]string{}
		if clam {
			vars["RELAY_CLAMD_ADDR"] = "tcp://clamd:3310"
		}
		f := loadCompose(t, vars)
		er, ok := f.Services["edgerelay"]
		if !ok {
			t.Fatal("no edgerelay service")
		}
		if er.Build == nil || er.Build.Context != ".." || er.Restart != "unless-stopped" || len(er.Profiles) != 0 {
			t.Errorf("edgerelay: build %+v, restart %q, profiles %v", er.Build, er.Restart, er.Profiles)
		}
		cfg := effective(t, er.Environment)
		if clam != (cfg["RELAY_CLAMD_ADDR"].Value != "") {
			t.Errorf("clamav profile %v, RELAY_CLAMD_ADDR %q", clam, cfg["RELAY_CLAMD_ADDR"].Value)
		}
		// Ports: each listener published on the port the client expects,
		// HTTP on loopback only (/metrics is not for the Internet).
		want := map[int]int{} // container port -> host port
		for name, p := range listeners(t, cfg) {
			switch name {
			case "submission":
				want[p] = 587
			case "submissions":
				want[p] = 465
			case "http":
				want[p] = p
			}
		}
		for _, spec := range er.Ports {
			parts := strings.Split(spec, ":")
			if len(parts) < 2 {
				t.Errorf("port %q publishes a random host port", spec)
				continue
			}
			cport, _ := strconv.Atoi(parts[len(parts)-1])
			hport, _ := strconv.Atoi(parts[len(parts)-2])
			if want[cport] != hport {
				t.Errorf("port %q: edgerelay listens on %v (container:host)", spec, want)
			}
			if cport == listenPort(t, cfg["RELAY_HTTP_ADDR"].Value) && parts[0] != "127.0.0.1" {
				t.Errorf("port %q publishes /metrics beyond the host", spec)
			}
			delete(want, cport)
		}
		if len(want) > 0 {
			t.Errorf("listeners not published: %v", want)
		}
		checkUnprivileged(t, listeners(t, cfg), 0) // Docker sets the sysctl to 0
		// Secrets: each _FILE path (and the users file) is a mounted secret.
		for _, k := range []string{"RELAY_AUTH_FILE", "RELAY_GATEWAY_PASSWORD_FILE"} {
			name, ok := strings.CutPrefix(er.Environment[k], "/run/secrets/")
			if !ok || !slices.Contains(er.Secrets, name) || f.Secrets[name].File == "" {
				t.Errorf("%s=%s is not a Compose secret of the service", k, er.Environment[k])
			}
		}
		if !slices.Contains(er.Volumes, "data:"+er.Environment["RELAY_DATA_DIR"]) {
			t.Errorf("volumes %v: none at RELAY_DATA_DIR %s", er.Volumes, er.Environment["RELAY_DATA_DIR"])
		}
		grace, err1 := time.ParseDuration(er.StopGracePeriod)
		sg, err2 := time.ParseDuration(cfg["RELAY_SHUTDOWN_GRACE"].Value)
		if err1 != nil || err2 != nil || grace <= sg {
			t.Errorf("stop_grace_period %q must exceed RELAY_SHUTDOWN_GRACE %s", er.StopGracePeriod, cfg["RELAY_SHUTDOWN_GRACE"].Value)
		}
		if !er.ReadOnly || !slices.Contains(er.CapDrop, "ALL") || er.User != "" {
			t.Errorf("edgerelay: read_only %v, cap_drop %v, user %q (the image's 65534)", er.ReadOnly, er.CapDrop, er.User)
		}
		clamd, ok := f.Services["clamd"]
		if !ok || !slices.Equal(clamd.Profiles, []string{"clamav"}) {
			t.Errorf("clamd: %+v, want it under the clamav profile only", clamd)
		}
		if clam && cfg["RELAY_CLAMD_ADDR"].Value != "tcp://clamd:3310" {
			t.Errorf("RELAY_CLAMD_ADDR %q does not reach the clamd service on 3310", cfg["RELAY_CLAMD_ADDR"].Value)
		}
		for name, s := range f.Services {
			if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
				t.Errorf("service %s: image %q is not pinned to a tag", name, s.Image)
			}
			for _, v := range s.Volumes {
				src, _, _ := strings.Cut(v, ":")
				if _, ok := f.Volumes[src]; !ok {
					t.Errorf("service %s mounts %s, which is not a declared volume", name, src)
				}
			}
		}
	}
}
