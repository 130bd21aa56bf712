package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/edgerelay/edgerelay/outbound"
)

// SDK retries of one SendEmail call: SES's sending rate is per second
// ("Maximum sending rate exceeded" clears within one), and the queue's own
// schedule waits minutes (RELAY_RETRY_SCHEDULE starts at 5m), so a short
// in-call retry of throttling, 5xx and dropped connections keeps a burst
// from delaying mail by a whole retry step. Three attempts with at most
// 2 s between them keep the call short (outbound's sesCallTimeout bounds
// it all); what is still failing after them goes to the queue's schedule
// and the gateway list's failover. A retry after a lost response may send
// the message twice, as the queue's retry would: at-least-once.
const (
	sesMaxAttempts = 3
	sesMaxBackoff  = 2 * time.Second
)

// newSESClient returns the SES v2 client for a ses://REGION gateway (region
// empty: the SDK's default chain, AWS_REGION or the shared config's). Its
// errors say what to change; the caller prefixes the variable and the
// gateway (config_gateway_plan.go). It
// uses the SDK's default configuration, as the SQS queue and the ACME
// storage do (wire.go, acme_wire.go): credentials from the chain (AWS_*
// variables, web identity, the container's or instance's IAM role), read
// when the first message is sent, never at start; AWS_ENDPOINT_URL_SESV2
// (or AWS_ENDPOINT_URL) as the endpoint, which the sesv2 client resolves
// itself from the configuration's sources. Nothing here touches the
// network: a region the URL does not name comes from the environment or
// the shared config files, never from the instance metadata service.
func newSESClient(ctx context.Context, cfg *Config, region string) (outbound.SESAPI, error) {
	if region != "" {
		if err := outbound.ValidSESRegion(region); err != nil {
			return nil, err
		}
	}
	if err := outbound.ValidConfigurationSet(cfg.SESConfigurationSet); err != nil {
		return nil, fmt.Errorf("RELAY_SES_CONFIGURATION_SET: %w", err)
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = sesMaxAttempts
				o.MaxBackoff = sesMaxBackoff
			})
		}),
	}
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("no AWS region: name one in the gateway (ses://eu-west-1 in RELAY_GATEWAY or RELAY_ROUTES) or set AWS_REGION")
	}
	if region == "" {
		if err := outbound.ValidSESRegion(awsCfg.Region); err != nil {
			return nil, fmt.Errorf("the region from AWS_REGION or the shared config: %w", err)
		}
	}
	return sesv2.NewFromConfig(awsCfg), nil
}
