package acme

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/smithy-go"
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
	// Logger: where a missing permission is named (none when nil).
	Logger *slog.Logger

	mu sync.Mutex // one read-modify-write of a record set at a time
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

// Present adds the challenge's TXT value to the record and waits until it
// is in sync. A name can need two values at once (RELAY_ACME_DOMAINS
// with *.example.org and example.org: certmagic orders each on its own,
// concurrently, and both answer at _acme-challenge.example.org), so the
// record set is read and rewritten with the value added, never replaced.
func (s *Route53Solver) Present(ctx context.Context, chal acme.Challenge) error {
	name, value := txtRecord(chal)
	ci, err := s.modify(ctx, name, value, true)
	if err != nil {
		return fmt.Errorf("route53: writing %s TXT in zone %s: %w", name, s.ZoneID, err)
	}
	return s.waitInSync(ctx, ci)
}

// modify adds value to the TXT record set name, or removes it (add false;
// the set is removed with its last value). The change deletes the set as read (Route 53
// refuses a DELETE whose values are not the current ones) and creates the
// new one in one atomic batch, so that a change made meanwhile (another
// order's, another front end's) is never lost: the batch fails and is
// done again on what is there then.
func (s *Route53Solver) modify(ctx context.Context, name, value string, add bool) (*r53types.ChangeInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for attempt := 1; ; attempt++ {
		cur, ttl, err := s.current(ctx, name)
		if isAccessDenied(err) {
			return s.blind(ctx, name, value, add)
		}
		if err != nil {
			return nil, err
		}
		next := slices.DeleteFunc(slices.Clone(cur), func(v string) bool { return v == value })
		if add {
			next = append(next, value)
		}
		if slices.Equal(slices.Sorted(slices.Values(cur)), slices.Sorted(slices.Values(next))) {
			return nil, nil
		}
		var changes []r53types.Change
		if len(cur) > 0 {
			changes = append(changes, r53types.Change{Action: r53types.ChangeActionDelete, ResourceRecordSet: txtSet(name, ttl, cur)})
		}
		if len(next) > 0 {
			changes = append(changes, r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: txtSet(name, 60, next)})
		}
		out, err := s.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(s.ZoneID),
			ChangeBatch: &r53types.ChangeBatch{Comment: aws.String("edgerelay ACME dns-01"), Changes: changes}})
		if err == nil {
			return out.ChangeInfo, nil
		}
		var bad *r53types.InvalidChangeBatch
		if !errors.As(err, &bad) || attempt == 5 {
			return nil, err
		}
		// Changed meanwhile: read it again.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// blind is modify without route53:ListResourceRecordSets (the policy the
// README named first): the value alone is written (UPSERT) or removed
// (DELETE), as if no other order's value could be there. A wildcard and
// its base name ordered at once then overwrite each other's value; the
// WARN names the permission.
func (s *Route53Solver) blind(ctx context.Context, name, value string, add bool) (*r53types.ChangeInfo, error) {
	if s.Logger != nil {
		s.Logger.Warn("ACME dns-01: route53:ListResourceRecordSets is not allowed: the TXT record is overwritten, not added to; allow it on the hosted zone so that a wildcard and its base name can be validated at once", "zone", s.ZoneID)
	}
	action := r53types.ChangeActionUpsert
	if !add {
		action = r53types.ChangeActionDelete
	}
	out, err := s.Client.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(s.ZoneID),
		ChangeBatch: changeBatch(action, name, value)})
	var bad *r53types.InvalidChangeBatch
	if !add && errors.As(err, &bad) {
		return nil, nil // already gone, or another's value there now
	}
	if err != nil {
		return nil, err
	}
	return out.ChangeInfo, nil
}

func isAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException":
			return true
		}
	}
	return false
}

// current reads the TXT record set name: its values and TTL.
func (s *Route53Solver) current(ctx context.Context, name string) ([]string, int64, error) {
	out, err := s.Client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(s.ZoneID),
		StartRecordName: aws.String(name), StartRecordType: r53types.RRTypeTxt})
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s TXT: %w", name, err)
	}
	for _, rr := range out.ResourceRecordSets {
		if rr.Type == r53types.RRTypeTxt && strings.EqualFold(strings.TrimSuffix(aws.ToString(rr.Name), "."), strings.TrimSuffix(name, ".")) {
			var vals []string
			for _, v := range rr.ResourceRecords {
				vals = append(vals, aws.ToString(v.Value))
			}
			return vals, aws.ToInt64(rr.TTL), nil
		}
	}
	return nil, 0, nil
}

func txtSet(name string, ttl int64, vals []string) *r53types.ResourceRecordSet {
	rrs := make([]r53types.ResourceRecord, len(vals))
	for i, v := range vals {
		rrs[i].Value = aws.String(v)
	}
	return &r53types.ResourceRecordSet{Name: aws.String(name), Type: r53types.RRTypeTxt, TTL: aws.Int64(ttl), ResourceRecords: rrs}
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

// CleanUp removes the challenge's TXT value (the record with it when it
// was the only one); one already gone is no error, another order's value
// at the same name stays.
func (s *Route53Solver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	name, value := txtRecord(chal)
	_, err := s.modify(ctx, name, value, false)
	if err != nil {
		return fmt.Errorf("route53: deleting %s TXT in zone %s: %w", name, s.ZoneID, err)
	}
	return nil
}
