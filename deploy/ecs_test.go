package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// decodeJSONStrict decodes a file into v, refusing unknown fields and
// anything after the value.
func decodeJSONStrict(t *testing.T, file string, v any) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if dec.More() {
		t.Fatalf("%s: more after the value", file)
	}
}

// iamPolicy is an IAM policy document (Action and Resource as a string or
// a list).
type iamPolicy struct {
	Version   string
	Statement []struct {
		Sid      string `json:",omitempty"`
		Effect   string
		Action   stringOrList
		Resource stringOrList
	}
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// allows reports whether p allows action on resource (IAM's * and ?
// wildcards in both).
func (p iamPolicy) allows(action, resource string) bool {
	glob := func(pattern, s string) bool {
		re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
		return regexp.MustCompile(re).MatchString(s)
	}
	for _, st := range p.Statement {
		if st.Effect != "Allow" {
			continue
		}
		if slices.ContainsFunc(st.Action, func(a string) bool { return glob(a, action) }) &&
			slices.ContainsFunc(st.Resource, func(r string) bool { return glob(r, resource) }) {
			return true
		}
	}
	return false
}

// TestECSStrict: the task definition decoder refuses an unknown field.
func TestECSStrict(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"family": "x", "containerDefinitions": [{"name": "x", "helthCheck": {}}]}`))
	dec.DisallowUnknownFields()
	var in ecs.RegisterTaskDefinitionInput
	if err := dec.Decode(&in); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}

// TestECSTaskDefinition: task-definition.json decodes strictly into the
// AWS SDK's RegisterTaskDefinitionInput (the JSON of `aws ecs
// register-task-definition --cli-input-json`); it is a Fargate task
// (awsvpc, a valid CPU/memory pair) with task and execution roles; its
// environment and its secrets make a valid configuration, every secret
// being one of edgerelay's; its port mappings are its listeners, all high
// (Fargate runs it as 65534, the image's user); its health check is
// the image's; stopTimeout exceeds RELAY_SHUTDOWN_GRACE; the task role's
// policy allows every SQS and S3 action the README's policy does, on the
// queue and bucket configured, and the execution role may read each
// secret.
func TestECSTaskDefinition(t *testing.T) {
	var in ecs.RegisterTaskDefinitionInput
	decodeJSONStrict(t, "ecs/task-definition.json", &in)
	if in.Family == nil || in.NetworkMode != ecstypes.NetworkModeAwsvpc || !slices.Equal(in.RequiresCompatibilities, []ecstypes.Compatibility{ecstypes.CompatibilityFargate}) {
		t.Errorf("family %v, network %s, compatibilities %v: want a Fargate task (awsvpc)", in.Family, in.NetworkMode, in.RequiresCompatibilities)
	}
	arn := regexp.MustCompile(`^arn:aws:iam::\d{12}:role/[\w+=,.@-]+$`)
	if in.TaskRoleArn == nil || !arn.MatchString(*in.TaskRoleArn) || in.ExecutionRoleArn == nil || !arn.MatchString(*in.ExecutionRoleArn) {
		t.Errorf("taskRoleArn %v, executionRoleArn %v: want role ARNs", in.TaskRoleArn, in.ExecutionRoleArn)
	}
	// Fargate's CPU/memory pairs (512 CPU units: 1-4 GB).
	if in.Cpu == nil || in.Memory == nil || *in.Cpu != "512" || !slices.Contains([]string{"1024", "2048", "3072", "4096"}, *in.Memory) {
		t.Errorf("cpu %v memory %v: not a Fargate pair this test knows", in.Cpu, in.Memory)
	}
	if len(in.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers", len(in.ContainerDefinitions))
	}
	c := in.ContainerDefinitions[0]
	env := map[string]string{}
	for _, kv := range c.Environment {
		env[*kv.Name] = *kv.Value
	}
	var injected []string
	for _, s := range c.Secrets {
		injected = append(injected, *s.Name)
	}
	cfg := effective(t, env, injected...)
	if c.Image == nil || strings.HasSuffix(*c.Image, ":latest") || !strings.Contains(path.Base(*c.Image), ":") {
		t.Errorf("image %v is not pinned to a tag", c.Image)
	}
	if c.User == nil || *c.User != "65534:65534" || c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
		t.Errorf("user %v, readonlyRootFilesystem %v: want 65534:65534 and a read-only root", c.User, c.ReadonlyRootFilesystem)
	}
	ports := listeners(t, cfg)
	checkUnprivileged(t, ports, -1)
	got := map[string]int{}
	for _, pm := range c.PortMappings {
		got[*pm.Name] = int(*pm.ContainerPort)
		if pm.Protocol != ecstypes.TransportProtocolTcp {
			t.Errorf("port %s: protocol %s", *pm.Name, pm.Protocol)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ports) {
		t.Errorf("port mappings %v, listeners %v", got, ports)
	}
	if c.HealthCheck == nil || !slices.Equal(c.HealthCheck.Command, []string{"CMD", "/edgerelay", "healthcheck"}) {
		t.Errorf("healthCheck %+v: want the image's edgerelay healthcheck", c.HealthCheck)
	}
	sg, _ := time.ParseDuration(cfg["RELAY_SHUTDOWN_GRACE"].Value)
	if c.StopTimeout == nil || time.Duration(*c.StopTimeout)*time.Second <= sg || *c.StopTimeout > 120 {
		t.Errorf("stopTimeout %d: must exceed RELAY_SHUTDOWN_GRACE %v (Fargate's maximum is 120)", aws.ToInt32(c.StopTimeout), sg)
	}
	if !slices.ContainsFunc(c.MountPoints, func(m ecstypes.MountPoint) bool { return *m.ContainerPath == env["RELAY_DATA_DIR"] }) {
		t.Errorf("RELAY_DATA_DIR %s is on no volume (the root file system is read-only)", env["RELAY_DATA_DIR"])
	}
	// A Fargate bind mount is root's, mode 0755, unless its containerPath
	// is a VOLUME of the image, whose contents and ownership (the
	// Dockerfile's /data, 65534's) ECS copies into it (the ECS guide,
	// "Use bind mounts"): otherwise uid 65534 could not write there.
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var volumes []string
	for _, in := range parseDockerfile(string(df)) {
		if in.Cmd == "VOLUME" {
			volumes = append(volumes, strings.Fields(in.Args)...)
		}
	}
	for _, m := range c.MountPoints {
		if !slices.Contains(volumes, *m.ContainerPath) {
			t.Errorf("mount point %s is not a VOLUME of the image %v: Fargate would give uid 65534 a root-owned directory", *m.ContainerPath, volumes)
		}
	}

	// The task role: what the README's policy allows, on this queue and
	// bucket.
	var task, exec iamPolicy
	decodeJSONStrict(t, "ecs/task-role-policy.json", &task)
	decodeJSONStrict(t, "ecs/execution-role-policy.json", &exec)
	m := regexp.MustCompile(`^https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([\w-]+)$`).FindStringSubmatch(cfg["RELAY_SQS_QUEUE_URL"].Value)
	if m == nil || cfg["RELAY_QUEUE"].Value != "sqs" {
		t.Fatalf("RELAY_QUEUE %s, RELAY_SQS_QUEUE_URL %s: want the SQS queue", cfg["RELAY_QUEUE"].Value, cfg["RELAY_SQS_QUEUE_URL"].Value)
	}
	queueARN := fmt.Sprintf("arn:aws:sqs:%s:%s:%s", m[1], m[2], m[3])
	bucket := cfg["RELAY_S3_BUCKET"].Value
	bounces := strings.TrimPrefix(cfg["RELAY_BOUNCE_STORE"].Value, "s3://")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rm := regexp.MustCompile("(?s)The task role's policy.*?```json\n(.*?)```").FindSubmatch(readme)
	if rm == nil {
		t.Fatal("README.md has no task role policy block")
	}
	var readmePolicy iamPolicy
	if err := json.Unmarshal(rm[1], &readmePolicy); err != nil {
		t.Fatalf("README's policy: %v", err)
	}
	for _, st := range readmePolicy.Statement {
		for _, a := range st.Action {
			var res string
			switch {
			case strings.HasPrefix(a, "sqs:"):
				res = queueARN
			case a == "s3:ListBucket":
				res = "arn:aws:s3:::" + bucket
			case strings.HasPrefix(a, "s3:") && strings.Contains(st.Resource[0], "/bounces/"):
				res = "arn:aws:s3:::" + bounces + "/x.eml"
			case strings.HasPrefix(a, "s3:"):
				res = "arn:aws:s3:::" + bucket + "/" + cfg["RELAY_S3_PREFIX"].Value + "x.eml"
			default:
				t.Errorf("README's policy has %s, which this test does not place", a)
				continue
			}
			if !task.allows(a, res) {
				t.Errorf("task-role-policy.json does not allow %s on %s (README's policy does)", a, res)
			}
		}
	}
	if task.allows("s3:DeleteObject", "arn:aws:s3:::"+bounces+"/x.eml") || task.allows("sqs:DeleteQueue", queueARN) {
		t.Error("task-role-policy.json allows more than edgerelay needs (deleting reports, or the queue)")
	}
	for _, s := range c.Secrets {
		if !exec.allows("secretsmanager:GetSecretValue", *s.ValueFrom+"-AbCdEf") {
			t.Errorf("execution-role-policy.json cannot read %s (%s)", *s.ValueFrom, *s.Name)
		}
	}
}
