package dsn

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// maxParseBytes bounds what Parse reads of one part, so that a hostile
// report cannot make it allocate without limit.
const maxParseBytes = 32 << 20

// Parse reads a delivery status notification (a multipart/report with
// report-type delivery-status, RFC 6522 and RFC 3464, or its RFC 6533
// global variant) into the model that Compose writes. Fields Parse does
// not know are ignored; the first part is taken as the human-readable text
// when it is text/plain.
func Parse(r io.Reader) (*Report, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil, fmt.Errorf("dsn: reading header: %w", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("dsn: Content-Type: %w", err)
	}
	if mt != "multipart/report" || !strings.EqualFold(params["report-type"], "delivery-status") {
		return nil, fmt.Errorf("dsn: not a delivery-status report: %s", mt)
	}
	if params["boundary"] == "" {
		return nil, errors.New("dsn: no boundary")
	}
	d := &Report{
		Subject:   msg.Header.Get("Subject"),
		MessageID: unbracket(msg.Header.Get("Message-Id")),
		InReplyTo: unbracket(msg.Header.Get("In-Reply-To")),
		Boundary:  params["boundary"],
	}
	if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil {
		d.From = a.Address
	}
	if to := msg.Header.Get("To"); to != "" {
		// The address as written between angle brackets: it is the SMTP
		// reverse-path, which net/mail may not accept (quoted local parts).
		d.To = unbracket(to)
	}
	if date := msg.Header.Get("Date"); date != "" {
		if d.Date, err = mail.ParseDate(date); err != nil {
			return nil, fmt.Errorf("dsn: Date: %w", err)
		}
	}

	mr := multipart.NewReader(msg.Body, d.Boundary)
	sawStatus := false
	for n := 0; ; n++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dsn: part %d: %w", n+1, err)
		}
		body, err := readPart(p)
		if err != nil {
			return nil, fmt.Errorf("dsn: part %d: %w", n+1, err)
		}
		pt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			pt = "text/plain" // RFC 2045 §5.2 default
		}
		switch pt {
		case "text/plain":
			if n == 0 {
				d.Text = string(body)
			}
		case ctDeliveryStatus, ctGlobalDeliveryStatus:
			d.SMTPUTF8 = pt == ctGlobalDeliveryStatus
			if err := d.parseStatus(body); err != nil {
				return nil, err
			}
			sawStatus = true
		case ctHeaders, ctGlobalHeaders:
			d.Return, d.Original = ReturnHeaders, returnedContent(body)
		case ctMessage, ctGlobalMessage:
			d.Return, d.Original = ReturnFull, returnedContent(body)
		}
	}
	if !sawStatus {
		return nil, errors.New("dsn: no delivery-status part")
	}
	return d, nil
}

// readPart reads a part's body, undoing its Content-Transfer-Encoding.
func readPart(p *multipart.Part) ([]byte, error) {
	var r io.Reader = io.LimitReader(p, maxParseBytes+1)
	switch strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &stripSpace{r: r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) > maxParseBytes {
		return nil, errors.New("part too large")
	}
	return b, nil
}

// stripSpace drops line breaks and spaces, which base64 bodies contain.
type stripSpace struct{ r io.Reader }

func (s *stripSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// parseStatus reads the groups of a delivery-status body: the per-message
// fields, then one group per recipient (RFC 3464 §2.1).
func (d *Report) parseStatus(body []byte) error {
	groups, err := statusGroups(body)
	if err != nil {
		return err
	}
	if len(groups) < 2 {
		return errors.New("dsn: delivery-status without recipient fields")
	}
	m := groups[0]
	d.ReportingMTA = typedValue(m.Get("Reporting-Mta"))
	d.EnvelopeID = m.Get("Original-Envelope-Id")
	if d.ArrivalDate, err = optDate(m, "Arrival-Date"); err != nil {
		return err
	}
	for _, g := range groups[1:] {
		r := Recipient{
			Action:         Action(strings.ToLower(g.Get("Action"))),
			Status:         g.Get("Status"),
			RemoteMTA:      typedValue(g.Get("Remote-Mta")),
			DiagnosticCode: typedValue(g.Get("Diagnostic-Code")),
		}
		if v := g.Get("Original-Recipient"); v != "" {
			typ, addr, _ := strings.Cut(v, ";")
			r.OriginalRecipient = strings.TrimSpace(typ) + ";" + strings.TrimSpace(addr)
		}
		final := g.Get("Final-Recipient")
		if final == "" {
			return errors.New("dsn: recipient group without Final-Recipient")
		}
		r.FinalRecipient = typedValue(final)
		if r.LastAttemptDate, err = optDate(g, "Last-Attempt-Date"); err != nil {
			return err
		}
		if r.WillRetryUntil, err = optDate(g, "Will-Retry-Until"); err != nil {
			return err
		}
		d.Recipients = append(d.Recipients, r)
	}
	return nil
}

// statusGroups splits a delivery-status body into its field groups.
// Unfolding follows RFC 5322 §2.2.3: a CRLF followed by white space is
// removed, the white space kept.
func statusGroups(body []byte) ([]textproto.MIMEHeader, error) {
	var groups []textproto.MIMEHeader
	lines := strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
	var cur textproto.MIMEHeader
	var last string // canonical key of the last field, for continuations
	flush := func() {
		if cur != nil {
			groups = append(groups, cur)
		}
		cur, last = nil, ""
	}
	for _, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case l[0] == ' ' || l[0] == '\t':
			if last == "" {
				return nil, errors.New("dsn: continuation line without a field")
			}
			v := cur[last]
			v[len(v)-1] += l
		default:
			name, value, ok := strings.Cut(l, ":")
			if !ok {
				return nil, fmt.Errorf("dsn: malformed field %q", trunc(l, 40))
			}
			if cur == nil {
				cur = textproto.MIMEHeader{}
			}
			last = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
			cur[last] = append(cur[last], strings.TrimLeft(value, " \t"))
		}
	}
	flush()
	for _, g := range groups {
		for k, vs := range g {
			for i := range vs {
				vs[i] = strings.TrimRight(vs[i], " \t")
			}
			g[k] = vs
		}
	}
	return groups, nil
}

// typedValue returns the part after "type;" of a typed field
// ("dns; mx.example.net" → "mx.example.net").
func typedValue(v string) string {
	if _, after, ok := strings.Cut(v, ";"); ok {
		return strings.TrimSpace(after)
	}
	return strings.TrimSpace(v)
}

func optDate(h textproto.MIMEHeader, name string) (time.Time, error) {
	v := h.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("dsn: %s: %w", name, err)
	}
	return t, nil
}

func unbracket(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") {
		s = s[1 : len(s)-1]
	}
	return s
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// returnedContent gives a parsed report's returned content the form DSN
// documents for Original: CRLF line endings, lines within the limit (a bare
// CR or LF ends a line; an over-long line is folded, which keeps a header
// field one field and rewraps a body line). A report read from the network
// can then be composed again (found by FuzzParseDSN: a bare CR).
func returnedContent(b []byte) []byte {
	out, _ := normalizeLines(b, true) // with fold set it always succeeds
	return out
}
