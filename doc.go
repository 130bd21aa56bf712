// Command edgerelay is a lightweight SMTP submission service: mail clients
// submit over SMTP AUTH + TLS, accepted mail is queued durably, and a worker
// delivers it through a gateway or directly to MX. See README.md.
//
// Usage:
//
//	edgerelay                 serve (configured by RELAY_* environment variables)
//	edgerelay version         print the version
//	edgerelay healthcheck     exit 0 if the local /healthz answers 200
//	edgerelay hash-password   read a password on stdin, print a bcrypt hash
//	edgerelay config [--json] print the effective configuration (secrets as (set))
//	edgerelay queue …         list, show, retry, hold, release, bounce, delete
//	                          queued mail (the running process's socket, or
//	                          the SQS + S3 queue itself)
//
// Package main owns the process and nothing that a library could hold:
//   - main.go: the commands above; configcmd.go: "edgerelay config";
//   - config.go (with config_check.go, config_validate.go,
//     config_secrets.go and config_oauth.go, RELAY_GATEWAY_AUTH and the
//     one OAuth2 token source for XOAUTH2): the typed Config, read from the
//     environment once and validated once, in a fixed order (validate, in
//     config_check.go), with typed Role and QueueKind;
//   - config_gateway.go (URL forms, lists, RELAY_ROUTES),
//     config_gateway_creds.go (RELAY_GATEWAY_CREDENTIALS_FILE) and
//     config_gateway_plan.go (checks, credentials per gateway, and the
//     worker's gateway lists): no error text shows a password, whether it
//     was in a variable, the credentials file or written into a URL;
//   - wire.go: building every part from Config (the queue backend, the
//     identity backends, the bounce store, the delivery worker, the
//     submission server);
//   - serve.go: running the parts the role asks for, the HTTP listener
//     (/healthz, /readyz, /metrics: httpserver.go, ready.go, metrics.go;
//     per gateway: ready_gateway.go, metrics_gateway.go),
//     signals and the drain; logging.go builds the logger;
//   - queuecmd.go (with queuefmt.go, the table; queuehttp.go, --url;
//     queuesqs.go, RELAY_QUEUE=sqs): "edgerelay queue"; adminwire.go: the
//     operator's socket in RELAY_DATA_DIR and /admin/ behind
//     RELAY_ADMIN_TOKEN (404 without it), both internal/admin's;
//     config_admin.go: the token must be sendable as a bearer token;
//   - lambda.go, lambda_handler.go: the same binary as an AWS Lambda
//     function fed by the SQS queue (AWS_LAMBDA_RUNTIME_API set): each
//     record through the worker's single-message path, a partial batch
//     response naming only the records that must stay in the queue.
//
// Invariants:
//   - This is the only place that names RELAY_ variables. The libraries
//     take typed options and return plain, typed errors; main maps an
//     error to the variable to fix (errors.Is, never the error's text).
//   - Configuration is all or nothing: every wrong value is reported, one
//     line per variable naming it, always in the same order, and the
//     process exits 2 without starting anything.
//   - Defaults live once, in Config's struct tags (configDefault reads
//     them, also for the healthcheck); the README's configuration table
//     lists every field (config_test.go keeps the two in step).
//   - A secret (a field tagged secret:"true") is never printed: "edgerelay
//     config" shows it as (set), and a URL's password in any value as
//     (hidden). It reads the environment and the _FILE secrets only:
//     validation opens no connection and looks up no name.
//   - No flag or hook for tests in the binary: tests call run, loadConfig
//     and serve as the binary does.
package main
