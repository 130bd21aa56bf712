package main

import (
	"fmt"
	"io"
	"os"
)

// lambdaRuntime reports whether the process runs as an AWS Lambda function
// (the runtime API the Lambda environment names).
func lambdaRuntime() bool { return os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" }

// lambdaMain runs the delivery worker as a Lambda handler fed by SQS.
// (skeleton: issue 13's serverless worker replaces it)
func lambdaMain(stderr io.Writer) int {
	fmt.Fprintln(stderr, "edgerelay: the Lambda worker is not built yet")
	return 1
}
