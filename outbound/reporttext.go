package outbound

import (
	"fmt"
	"strings"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// humanText is the first, human-readable part of a report (RFC 6522 §3):
// what happened, to which recipients, what each remote server answered,
// and what was returned. Delay reports state the time until which delivery
// is retried, taken from the request, never a schedule written here.
func humanText(host string, req ReportRequest, env *queue.Envelope, idx []int, orig dsn.Returned, limit int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at %s.\n\n", host)
	switch req.Kind {
	case dsn.Failed:
		b.WriteString("Your message could not be delivered to the recipients listed below.\n" +
			"Delivery to them has stopped for good; the message will not be retried.\n")
	case dsn.Delayed:
		b.WriteString("Your message has not yet been delivered to the recipients listed below.\n")
		if !req.WillRetryUntil.IsZero() {
			fmt.Fprintf(&b, "The mail system will retry until %s.\n", req.WillRetryUntil.Format(dsn.DateFormat))
		} else {
			b.WriteString("The mail system will keep retrying.\n")
		}
		b.WriteString("You do not need to send it again; you will be told if it cannot be\n" +
			"delivered in the end.\n")
	case dsn.Relayed:
		b.WriteString("Your message was handed on to the mail servers of the recipients listed\n" +
			"below. Those servers do not send delivery notifications, so this is the\n" +
			"last notification you will get about these recipients.\n")
	case dsn.Delivered:
		b.WriteString("Your message was delivered to the recipients listed below.\n")
	}
	for _, i := range idx {
		rc := &env.Recipients[i]
		fmt.Fprintf(&b, "\n<%s>\n", rc.Addr)
		switch {
		case rc.Reply != nil && rc.RemoteMTA != "":
			fmt.Fprintf(&b, "    The server %s answered:\n", rc.RemoteMTA)
			wrapIndented(&b, recordable(rc.Reply).String(), "        ")
		case rc.Reply != nil:
			b.WriteString("    Reason:\n")
			wrapIndented(&b, recordable(rc.Reply).String(), "        ")
		case req.Kind == dsn.Failed || req.Kind == dsn.Delayed:
			fmt.Fprintf(&b, "    Status %s (no reply was recorded).\n", statusCode(req.Kind, nil))
		}
	}
	b.WriteString("\n")
	switch {
	case orig.Return == dsn.ReturnFull:
		b.WriteString("Your message is attached.\n")
	case orig.TooBig:
		fmt.Fprintf(&b, "Your message was larger than %d bytes, so only its header section is\nattached.\n", limit)
	case orig.LongLines:
		b.WriteString("Your message has lines too long to return unchanged, so only its header\nsection is attached.\n")
	case orig.Return == dsn.ReturnHeaders && orig.HeadersCut:
		fmt.Fprintf(&b, "The header section of your message is attached, cut at %d bytes.\n", limit)
	case orig.Return == dsn.ReturnHeaders:
		b.WriteString("The header section of your message is attached.\n")
	}
	if env.ID != "" {
		fmt.Fprintf(&b, "Queue ID: %s\n", env.ID)
	}
	return b.String()
}

// wrapIndented writes s as lines of at most about 76 characters, each
// starting with indent, broken at spaces; control characters are dropped.
func wrapIndented(b *strings.Builder, s, indent string) {
	const width = 76
	line := indent
	for _, w := range strings.Fields(dsn.Clean(strings.ToValidUTF8(s, "\uFFFD"))) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
}
