package acme

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/mholt/acmez/v3/acme"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestAttackDNS01WildcardAndBase: RELAY_ACME_DOMAINS=*.acme.test,acme.test
// (accepted with dns-01) needs two TXT values at one name,
// _acme-challenge.acme.test, at the same time (certmagic orders each name
// on its own, concurrently). An UPSERT of the second must not replace the
// first, and the first's CleanUp must not leave the second's behind nor
// remove it.
func TestAttackDNS01WildcardAndBase(t *testing.T) {
	srv := awstest.Start(t)
	client := route53.NewFromConfig(srv.Config())
	ctx := context.Background()
	zone, err := client.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{
		Name: aws.String("acme.test."), CallerReference: aws.String(awstest.UniqueName("acme-zone"))})
	if err != nil {
		t.Fatal(err)
	}
	s := &Route53Solver{Client: client, ZoneID: aws.ToString(zone.HostedZone.Id), Poll: 20 * time.Millisecond}
	wild := acme.Challenge{Type: "dns-01", Identifier: acme.Identifier{Type: "dns", Value: "*.acme.test"}, KeyAuthorization: "tokA.thumb"}
	base := acme.Challenge{Type: "dns-01", Identifier: acme.Identifier{Type: "dns", Value: "acme.test"}, KeyAuthorization: "tokB.thumb"}
	_, vw := txtRecord(wild)
	_, vb := txtRecord(base)
	if err := s.Present(ctx, wild); err != nil {
		t.Fatal(err)
	}
	if err := s.Present(ctx, base); err != nil {
		t.Fatal(err)
	}
	got := txtRecords(ctx, s)
	if !slices.ContainsFunc(got, func(r string) bool { return strings.HasSuffix(r, vw) }) ||
		!slices.ContainsFunc(got, func(r string) bool { return strings.HasSuffix(r, vb) }) {
		t.Fatalf("both challenges presented, the zone holds %v; want both values %s and %s", got, vw, vb)
	}
	if err := s.CleanUp(ctx, wild); err != nil {
		t.Fatal(err)
	}
	got = txtRecords(ctx, s)
	if len(got) != 1 || !strings.HasSuffix(got[0], vb) {
		t.Fatalf("after the wildcard's CleanUp the zone holds %v; want only %s", got, vb)
	}
	if err := s.CleanUp(ctx, base); err != nil {
		t.Fatal(err)
	}
	if got = txtRecords(ctx, s); len(got) != 0 {
		t.Fatalf("after both CleanUps the zone holds %v", got)
	}
}

// TestAttackDNS01WithoutListPermission: a role with only the permissions
// the README first named (ChangeResourceRecordSets, GetChange; no
// ListResourceRecordSets) still gets its record written and removed, with
// a WARN naming the missing permission.
func TestAttackDNS01WithoutListPermission(t *testing.T) {
	srv := awstest.Start(t)
	ctx := context.Background()
	admin := route53.NewFromConfig(srv.Config())
	zone, err := admin.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{
		Name: aws.String("acme.test."), CallerReference: aws.String(awstest.UniqueName("acme-zone"))})
	if err != nil {
		t.Fatal(err)
	}
	deny := func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("deny-list", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if _, ok := in.Parameters.(*route53.ListResourceRecordSetsInput); ok {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform route53:ListResourceRecordSets"}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
	var logs syncBuffer
	s := &Route53Solver{Client: route53.NewFromConfig(srv.Config(), func(o *route53.Options) { o.APIOptions = append(o.APIOptions, deny) }),
		ZoneID: aws.ToString(zone.HostedZone.Id), Poll: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	inspect := &Route53Solver{Client: admin, ZoneID: s.ZoneID}
	chal := acme.Challenge{Type: "dns-01", Identifier: acme.Identifier{Type: "dns", Value: "smtp.acme.test"}, KeyAuthorization: "tok.thumb"}
	_, v := txtRecord(chal)
	if err := s.Present(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if got := txtRecords(ctx, inspect); len(got) != 1 || !strings.HasSuffix(got[0], v) {
		t.Fatalf("after Present: %v", got)
	}
	if err := s.CleanUp(ctx, chal); err != nil {
		t.Fatal(err)
	}
	if got := txtRecords(ctx, inspect); len(got) != 0 {
		t.Fatalf("after CleanUp: %v", got)
	}
	if !strings.Contains(logs.String(), "ListResourceRecordSets") {
		t.Fatalf("no WARN naming the permission: %s", logs.String())
	}
}
