package main

import (
	"context"
	"errors"

	"github.com/edgerelay/edgerelay/outbound"
)

// newSESClient returns the SES v2 client for a ses://REGION gateway (region
// empty: the SDK's default chain), with the SDK's default credentials and
// AWS_ENDPOINT_URL_SESV2. (skeleton: issue 12's SES gateway replaces it)
func newSESClient(ctx context.Context, cfg *Config, region string) (outbound.SESAPI, error) {
	return nil, errors.New("ses:// gateways are not built yet")
}
