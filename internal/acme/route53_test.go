package acme

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/edgerelay/edgerelay/internal/acme/pebbletest"
	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestACMEDNS01Record: the record's name and value as RFC 8555 §8.4 has
// them, and the change that writes or removes it.
func TestACMEDNS01Record(t *testing.T) {
	for in, want := range map[string]string{
		"smtp.example.org": "_acme-challenge.smtp.example.org.", "smtp.example.org.": "_acme-challenge.smtp.example.org.",
		"*.example.org": "_acme-challenge.example.org.",
	} {
		if got := recordName(in); got != want {
			t.Errorf("recordName(%q) = %q, want %q", in, got, want)
		}
	}
	chal := acme.Challenge{Identifier: acme.Identifier{Type: "dns", Value: "smtp.example.org"}, KeyAuthorization: "token.thumbprint"}
	name, value := txtRecord(chal)
	sum := sha256.Sum256([]byte("token.thumbprint"))
	if name != "_acme-challenge.smtp.example.org." || value != `"`+base64.RawURLEncoding.EncodeToString(sum[:])+`"` {
		t.Fatalf("txtRecord = %q %q", name, value)
	}
	b := changeBatch(r53types.ChangeActionDelete, name, value)
	rr := b.Changes[0].ResourceRecordSet
	if b.Changes[0].Action != r53types.ChangeActionDelete || rr.Type != r53types.RRTypeTxt || aws.ToInt64(rr.TTL) != 60 ||
		aws.ToString(rr.ResourceRecords[0].Value) != value {
		t.Fatalf("changeBatch: %+v", b.Changes[0])
	}
}

// seenSolver records the zone's TXT records right after Present.
type seenSolver struct {
	*Route53Solver
	mu   sync.Mutex
	seen []string
}

func (s *seenSolver) Present(ctx context.Context, chal acme.Challenge) error {
	if err := s.Route53Solver.Present(ctx, chal); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, txtRecords(ctx, s.Route53Solver)...)
	return nil
}

func txtRecords(ctx context.Context, s *Route53Solver) []string {
	out, err := s.Client.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(s.ZoneID)})
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var txt []string
	for _, rr := range out.ResourceRecordSets {
		if rr.Type == r53types.RRTypeTxt {
			for _, v := range rr.ResourceRecords {
				txt = append(txt, aws.ToString(rr.Name)+" "+aws.ToString(v.Value))
			}
		}
	}
	return txt
}

// TestACMEDNS01Route53: an order with dns-01 against Pebble writes the
// _acme-challenge TXT record in the hosted zone (the Route 53 of the
// in-process emulator, through the real SDK), and removes it once the
// certificate is issued.
func TestACMEDNS01Route53(t *testing.T) {
	p := pebbletest.Start(t)
	roots := p.Roots(t)
	srv := awstest.Start(t)
	client := route53.NewFromConfig(srv.Config())
	zone, err := client.CreateHostedZone(context.Background(), &route53.CreateHostedZoneInput{
		Name: aws.String("acme.test."), CallerReference: aws.String(awstest.UniqueName("acme-zone"))})
	if err != nil {
		t.Fatal(err)
	}
	solver := &seenSolver{Route53Solver: &Route53Solver{Client: client, ZoneID: aws.ToString(zone.HostedZone.Id), Poll: 50 * time.Millisecond}}
	var logs syncBuffer
	m := testManager(t, p, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) {
		o.Challenge, o.DNS01 = DNS01, solver
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitCert(t, m, roots, nil, 30*time.Second)
	solver.mu.Lock()
	seen := strings.Join(solver.seen, "\n")
	solver.mu.Unlock()
	if !strings.Contains(seen, "_acme-challenge.smtp.acme.test") {
		t.Fatalf("no _acme-challenge TXT record while the challenge ran: %q", seen)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := txtRecords(context.Background(), solver.Route53Solver)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TXT records left after issuance: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
