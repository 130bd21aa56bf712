package acme

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/mholt/acmez/v3/acme"
)

// DNS01 is the dns-01 challenge through Route 53 (RELAY_ACME_CHALLENGE).
const DNS01 = "dns-01"

// Route53Solver solves dns-01 (RFC 8555 §8.4) in one Route 53 hosted
// zone: Present writes the TXT record _acme-challenge.<name> and waits
// until Route 53 reports the change INSYNC; CleanUp deletes it.
type Route53Solver struct {
	Client *route53.Client
	ZoneID string
	// Poll is how often a change's status is read (2 s when 0).
	Poll time.Duration
}

// txtRecord is the record that answers chal.
func txtRecord(chal acme.Challenge) (name, value string) {
	return recordName(chal.Identifier.Value), `"` + chal.DNS01KeyAuthorization() + `"`
}

// recordName is dns-01's record name for an identifier (a wildcard's
// record is its base name's), fully qualified.
func recordName(identifier string) string {
	return "_acme-challenge." + strings.TrimSuffix(strings.TrimPrefix(identifier, "*."), ".") + "."
}

// changeBatch is the Route 53 change that writes (UPSERT) or removes
// (DELETE) the record. A short TTL: a resolver must not keep an old value
// across the next order.
func changeBatch(action r53types.ChangeAction, name, value string) *r53types.ChangeBatch {
	return &r53types.ChangeBatch{
		Comment: aws.String("edgerelay ACME dns-01"),
		Changes: []r53types.Change{{Action: action, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String(name), Type: r53types.RRTypeTxt, TTL: aws.Int64(60),
			ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(value)}},
		}}},
	}
}

// Present writes the challenge's TXT record and waits until it is in sync.
func (s *Route53Solver) Present(ctx context.Context, chal acme.Challenge) error {
	name, value := txtRecord(chal)
	out, err := s.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(s.ZoneID), ChangeBatch: changeBatch(r53types.ChangeActionUpsert, name, value)})
	if err != nil {
		return fmt.Errorf("route53: writing %s TXT in zone %s: %w", name, s.ZoneID, err)
	}
	return s.waitInSync(ctx, out.ChangeInfo)
}

// waitInSync polls the change until Route 53 says INSYNC (ctx bounds it).
func (s *Route53Solver) waitInSync(ctx context.Context, ci *r53types.ChangeInfo) error {
	poll := s.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	for ci != nil && ci.Status != r53types.ChangeStatusInsync {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
		out, err := s.Client.GetChange(ctx, &route53.GetChangeInput{Id: ci.Id})
		if err != nil {
			return fmt.Errorf("route53: change %s: %w", aws.ToString(ci.Id), err)
		}
		ci = out.ChangeInfo
	}
	return nil
}

// CleanUp deletes the challenge's TXT record; one already gone is no error.
func (s *Route53Solver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	name, value := txtRecord(chal)
	_, err := s.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(s.ZoneID), ChangeBatch: changeBatch(r53types.ChangeActionDelete, name, value)})
	var bad *r53types.InvalidChangeBatch
	if err != nil && !errors.As(err, &bad) {
		return fmt.Errorf("route53: deleting %s TXT in zone %s: %w", name, s.ZoneID, err)
	}
	return nil
}
