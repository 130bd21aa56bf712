// Package deploy holds no code: its tests check the deployment files
// beside them against the binary.
//
// Files (and the Dockerfile at the top, dockerfile_test.go: its lint):
//   - compose.yaml: Docker Compose, edgerelay with the users file and the
//     gateway password as Compose secrets, and clamd under the profile
//     "clamav" (compose_test.go: decoded strictly into the subset of the
//     Compose schema the file uses, unknown keys refused);
//   - kubernetes/: secret.yaml, service.yaml, pdb.yaml for both variants;
//     spool/ (deployment.yaml, pvc.yaml) and sqs/ (submission.yaml,
//     worker.yaml, serviceaccount.yaml) (kube_test.go: sigs.k8s.io/yaml's
//     UnmarshalStrict into the k8s.io/api types);
//   - ecs/: task-definition.json (Fargate, SQS + S3), task-role-policy.json
//     and execution-role-policy.json (ecs_test.go: the AWS SDK's
//     RegisterTaskDefinitionInput, unknown fields refused).
//
// Invariants the tests hold for every file (deploy_test.go):
//   - every RELAY_ variable it sets is one edgerelay reads, and with
//     stand-ins for its secrets the configuration is valid, as the built
//     binary's "edgerelay config --json" says;
//   - the ports it publishes and probes are the ones that configuration
//     listens on, /healthz for liveness and /readyz for readiness;
//   - the process runs as uid 65534 and listens below 1024 only where the
//     platform lets it (Docker; elsewhere high ports mapped by the
//     platform).
package deploy
