package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kubeObjects is what the manifests of one variant hold.
type kubeObjects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	secrets     []corev1.Secret
	pvcs        []corev1.PersistentVolumeClaim
	pdbs        []policyv1.PodDisruptionBudget
	accounts    []corev1.ServiceAccount
}

// decodeStrict decodes one YAML document into v with sigs.k8s.io/yaml's
// UnmarshalStrict: unknown and duplicate fields are errors.
func decodeStrict(t *testing.T, file string, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// appendStrict decodes one document into a new T and appends it.
func appendStrict[T any](t *testing.T, file string, doc []byte, to *[]T) {
	t.Helper()
	var v T
	decodeStrict(t, file, doc, &v)
	*to = append(*to, v)
}

// loadKube decodes the common manifests and those of one variant's
// directory, each document by its apiVersion and kind into the k8s.io/api
// type; another kind fails.
func loadKube(t *testing.T, variant string) kubeObjects {
	t.Helper()
	files := []string{"kubernetes/secret.yaml", "kubernetes/service.yaml", "kubernetes/pdb.yaml"}
	more, _ := filepath.Glob(filepath.Join("kubernetes", variant, "*.yaml"))
	if len(more) == 0 {
		t.Fatalf("no manifests in kubernetes/%s", variant)
	}
	var o kubeObjects
	for _, file := range append(files, more...) {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
			if len(bytes.TrimSpace([]byte(doc))) == 0 {
				continue
			}
			var tm struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				appendStrict(t, file, []byte(doc), &o.deployments)
			case "v1 Service":
				appendStrict(t, file, []byte(doc), &o.services)
			case "v1 Secret":
				appendStrict(t, file, []byte(doc), &o.secrets)
			case "v1 PersistentVolumeClaim":
				appendStrict(t, file, []byte(doc), &o.pvcs)
			case "policy/v1 PodDisruptionBudget":
				appendStrict(t, file, []byte(doc), &o.pdbs)
			case "v1 ServiceAccount":
				appendStrict(t, file, []byte(doc), &o.accounts)
			default:
				t.Fatalf("%s: %s %s is not a kind this test checks", file, tm.APIVersion, tm.Kind)
			}
		}
	}
	return o
}

// TestKubeStrict: the decoder refuses an unknown field (a misspelt probe
// would otherwise be dropped silently, and the pod would run without it).
func TestKubeStrict(t *testing.T) {
	var d appsv1.Deployment
	bad := "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          livenesProbe: {}\n"
	if err := yaml.UnmarshalStrict([]byte(bad), &d); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}

// matches reports whether labels satisfy a selector's matchLabels.
func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubeManifests: for the spool and the SQS variant, every Deployment
// runs a valid configuration (edgerelay config --json with its env), as
// uid 65534 non-root with high ports, names its container ports after the
// listeners that configuration has, probes /healthz (liveness) and
// /readyz (readiness) on the HTTP port, mounts every file a variable names
// (from the Secret's keys), and gives SIGTERM more time than
// RELAY_SHUTDOWN_GRACE. The spool variant: one replica, Recreate, the PVC;
// the SQS variant: RELAY_QUEUE=sqs and no PVC. The Service reaches 587 and
// 465 on pods that listen for them; the PDB selects the pods.
func TestKubeManifests(t *testing.T) {
	for _, variant := range []string{"spool", "sqs"} {
		t.Run(variant, func(t *testing.T) {
			o := loadKube(t, variant)
			if len(o.deployments) == 0 || len(o.secrets) != 1 || len(o.pdbs) != 1 {
				t.Fatalf("%d deployments, %d secrets, %d PDBs", len(o.deployments), len(o.secrets), len(o.pdbs))
			}
			secret := o.secrets[0]
			keys := map[string]bool{}
			for k := range secret.StringData {
				keys[k] = true
			}
			for k := range secret.Data {
				keys[k] = true
			}
			submitters := 0
			for _, d := range o.deployments {
				checkDeployment(t, variant, d, secret.Name, keys, o)
				labels := d.Spec.Template.Labels
				if !matches(d.Spec.Selector.MatchLabels, labels) {
					t.Errorf("%s: selector %v does not select its pods %v", d.Name, d.Spec.Selector.MatchLabels, labels)
				}
				if !matches(o.pdbs[0].Spec.Selector.MatchLabels, labels) {
					t.Errorf("PDB does not cover %s", d.Name)
				}
				for _, s := range o.services {
					if !matches(s.Spec.Selector, labels) {
						continue
					}
					c := d.Spec.Template.Spec.Containers[0]
					for _, sp := range s.Spec.Ports {
						if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
							return sp.TargetPort.Type == intstr.String && p.Name == sp.TargetPort.StrVal || sp.TargetPort.Type == intstr.Int && p.ContainerPort == sp.TargetPort.IntVal
						}) {
							t.Errorf("Service %s port %d targets %s, which %s does not have", s.Name, sp.Port, sp.TargetPort.String(), d.Name)
						}
						if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
							if want := map[string]int32{"submission": 587, "submissions": 465}[sp.TargetPort.StrVal]; want != sp.Port {
								t.Errorf("Service %s publishes %s on %d, want %d", s.Name, sp.TargetPort.StrVal, sp.Port, want)
							}
							submitters++
						}
					}
				}
			}
			if submitters == 0 {
				t.Error("no Deployment behind the LoadBalancer Service's 587/465")
			}
		})
	}
}

func checkDeployment(t *testing.T, variant string, d appsv1.Deployment, secretName string, keys map[string]bool, o kubeObjects) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("%s: %s from valueFrom: this test knows only values", d.Name, e.Name)
		}
		env[e.Name] = e.Value
	}
	cfg := effective(t, env)
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("%s: image %q is not pinned to a tag", d.Name, c.Image)
	}
	// Who it runs as, and the ports that uid may bind.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65534 || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.FSGroup == nil || *psc.FSGroup != 65534 {
		t.Errorf("%s: pod securityContext %+v: want runAsNonRoot, runAsUser and fsGroup 65534 (the image's user; fsGroup makes the volume writable)", d.Name, psc)
	}
	lowered := -1
	if psc != nil {
		for _, s := range psc.Sysctls {
			if s.Name == "net.ipv4.ip_unprivileged_port_start" {
				lowered, _ = strconv.Atoi(s.Value)
			}
		}
	}
	ports := listeners(t, cfg)
	checkUnprivileged(t, ports, lowered)
	// Container ports: exactly the listeners, named after them.
	got := map[string]int{}
	for _, p := range c.Ports {
		got[p.Name] = int(p.ContainerPort)
	}
	if len(got) != len(ports) {
		t.Errorf("%s: container ports %v, listeners %v", d.Name, got, ports)
	}
	for name, p := range ports {
		if got[name] != p {
			t.Errorf("%s: container port %q is %d, the listener %d", d.Name, name, got[name], p)
		}
	}
	// Probes on the HTTP listener.
	for _, pr := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s", d.Name, pr.what)
			continue
		}
		h := pr.probe.HTTPGet
		port := int(h.Port.IntVal)
		if h.Port.Type == intstr.String {
			port = got[h.Port.StrVal]
		}
		if h.Path != pr.path || port != ports["http"] || port == 0 {
			t.Errorf("%s: %s %s on port %s (%d): want %s on RELAY_HTTP_ADDR's %d", d.Name, pr.what, h.Path, h.Port.String(), port, pr.path, ports["http"])
		}
	}
	// SIGTERM to SIGKILL longer than the drain.
	sg, _ := time.ParseDuration(cfg["RELAY_SHUTDOWN_GRACE"].Value)
	if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= sg {
		t.Errorf("%s: terminationGracePeriodSeconds must exceed RELAY_SHUTDOWN_GRACE %v", d.Name, sg)
	}
	// Every path a variable names is on a mount: files from the Secret's
	// keys, the data directory on its volume.
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mountOf := func(path string) (corev1.VolumeMount, bool) {
		for _, m := range c.VolumeMounts {
			if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
				return m, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	for _, k := range []string{"RELAY_AUTH_FILE", "RELAY_GATEWAY_PASSWORD_FILE", "RELAY_LDAP_BIND_PASSWORD_FILE", "RELAY_TLS_CERT_FILE", "RELAY_TLS_KEY_FILE"} {
		p, ok := env[k]
		if !ok {
			continue
		}
		m, ok := mountOf(p)
		v := vols[m.Name]
		if !ok || v.Secret == nil || v.Secret.SecretName != secretName || !keys[filepath.Base(p)] {
			t.Errorf("%s: %s=%s is not a key of Secret %s mounted there", d.Name, k, p, secretName)
			continue
		}
		if mode := v.Secret.DefaultMode; mode == nil || *mode&0o040 == 0 {
			t.Errorf("%s: Secret volume %s: defaultMode must let group 65534 (fsGroup) read", d.Name, m.Name)
		}
	}
	dataMount, ok := mountOf(env["RELAY_DATA_DIR"])
	if !ok {
		t.Fatalf("%s: RELAY_DATA_DIR %s is on no volume (the root file system is read-only)", d.Name, env["RELAY_DATA_DIR"])
	}
	data := vols[dataMount.Name]
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container securityContext %+v: want a read-only root and no privilege escalation", d.Name, sc)
	}
	switch variant {
	case "spool":
		if cfg["RELAY_QUEUE"].Value != "spool" || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("%s: the spool is one process's: want RELAY_QUEUE spool, 1 replica, Recreate", d.Name)
		}
		if data.PersistentVolumeClaim == nil || !slices.ContainsFunc(o.pvcs, func(p corev1.PersistentVolumeClaim) bool { return p.Name == data.PersistentVolumeClaim.ClaimName }) {
			t.Errorf("%s: RELAY_DATA_DIR's volume %+v is not the PVC", d.Name, data.VolumeSource)
		}
	case "sqs":
		if cfg["RELAY_QUEUE"].Value != "sqs" || len(o.pvcs) != 0 || data.EmptyDir == nil {
			t.Errorf("%s: the SQS variant: want RELAY_QUEUE sqs, no PVC, an emptyDir", d.Name)
		}
		if !slices.ContainsFunc(o.accounts, func(a corev1.ServiceAccount) bool { return a.Name == spec.ServiceAccountName }) {
			t.Errorf("%s: service account %q (AWS credentials) is not in the manifests", d.Name, spec.ServiceAccountName)
		}
	}
}
