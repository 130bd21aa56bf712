package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// printQueueList prints entries as mailq does: one line per message, one
// indented line per recipient with its state and last reply, and a
// summary line (count, total size, oldest age).
func printQueueList(w io.Writer, entries []queue.Entry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "-- queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tSIZE\tTRIES\tNEXT\tSTATE\tSENDER")
	var total int64
	var oldest time.Time
	for i := range entries {
		e := &entries[i]
		env := &e.Envelope
		total += env.Size
		if oldest.IsZero() || env.Arrival.Before(oldest) {
			oldest = env.Arrival
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", env.ID, shortAge(now.Sub(env.Arrival)), sizeText(env.Size),
			env.Attempts, nextText(e, now), stateText(e), addrText(env.From))
		for _, r := range env.Recipients {
			fmt.Fprintf(tw, "  %s\t\t\t%d\t\t%s\t%s\n", "", r.Attempts, clean(string(r.Status)), addrText(r.Addr)+replyText(&r))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "-- %d message(s), %s, oldest %s\n", len(entries), sizeText(total), shortAge(now.Sub(oldest)))
}

// printQueueEntry prints one message's envelope and recipients.
func printQueueEntry(w io.Writer, e *queue.Entry, now time.Time) {
	env := &e.Envelope
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, a...)...) }
	row("ID", "%s", env.ID)
	row("State", "%s", stateText(e))
	if !e.AsOf.IsZero() && now.Sub(e.AsOf) > 2*time.Second {
		// SQS + S3: the copy written at the last enqueue, retry or re-arm.
		row("As of", "%s (%s ago)", e.AsOf.UTC().Format(time.RFC3339), shortAge(now.Sub(e.AsOf)))
	}
	row("Arrival", "%s (%s ago)", env.Arrival.UTC().Format(time.RFC3339), shortAge(now.Sub(env.Arrival)))
	row("Sender", "%s", addrText(env.From))
	if env.User != "" {
		row("User", "%s", clean(env.User))
	}
	row("Size", "%d bytes", env.Size)
	row("Attempts", "%d", env.Attempts)
	row("Next attempt", "%s", nextLong(e, now))
	if env.MessageID != "" {
		row("Message-ID", "%s", clean(env.MessageID))
	}
	if env.Route != "" {
		row("Route", "%s", clean(env.Route))
	}
	var dsn []string
	if env.RET != "" {
		dsn = append(dsn, "RET="+clean(env.RET))
	}
	if env.EnvID != "" {
		dsn = append(dsn, "ENVID="+clean(env.EnvID))
	}
	if len(dsn) > 0 {
		row("DSN", "%s", strings.Join(dsn, " "))
	}
	if env.Bounce {
		row("Report", "%s", "yes (a report edgerelay made; never bounced again)")
	}
	tw.Flush()
	fmt.Fprintln(w, "Recipients:")
	for _, r := range env.Recipients {
		fmt.Fprintf(w, "  %s  %s  attempts %d", addrText(r.Addr), clean(string(r.Status)), r.Attempts)
		if !r.LastAttempt.IsZero() {
			fmt.Fprintf(w, ", last %s", r.LastAttempt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
		if r.Reply != nil {
			fmt.Fprintf(w, "    reply: %s", clean(r.Reply.String()))
			if r.RemoteMTA != "" {
				fmt.Fprintf(w, " (from %s)", clean(r.RemoteMTA))
			}
			fmt.Fprintln(w)
		}
	}
}

// stateText is the message's state for the operator.
func stateText(e *queue.Entry) string {
	switch {
	case e.Envelope.Operator == queue.OperatorBounce:
		return "bouncing"
	case e.Envelope.Operator == queue.OperatorDelete:
		return "deleting"
	case e.Envelope.Hold:
		return "held"
	case e.Leased:
		return "delivering"
	}
	return "queued"
}

func nextText(e *queue.Entry, now time.Time) string {
	switch {
	case e.Envelope.Hold || e.Leased:
		return "-"
	case !e.Envelope.NextAttempt.After(now):
		return "now"
	}
	return "in " + shortAge(e.Envelope.NextAttempt.Sub(now))
}

func nextLong(e *queue.Entry, now time.Time) string {
	n := nextText(e, now)
	if n == "-" || n == "now" || e.Envelope.NextAttempt.IsZero() {
		return n
	}
	return e.Envelope.NextAttempt.UTC().Format(time.RFC3339) + " (" + n + ")"
}

// replyText is a recipient's last reply, on one short line.
func replyText(r *queue.Recipient) string {
	if r.Reply == nil {
		return ""
	}
	s := clean(r.Reply.String())
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return "  " + s
}

// addrText shows an address; <> for the null reverse-path.
func addrText(a string) string {
	if a == "" {
		return "<>"
	}
	return clean(a)
}

// clean keeps a terminal safe from what a remote server or a submitter
// sent (a reply, an address, the client's Message-ID header): control
// characters become '?', bytes that are not UTF-8 U+FFFD (never 0xff,
// text/tabwriter's escape). Every text field of an envelope goes
// through it; --body prints the message raw, as submitted (decided: it
// is the data, for a pipe or a file; the README says so).
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// shortAge is d in its two largest units: 42s, 3m12s, 5h3m, 2d4h.
func shortAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// sizeText is a byte count in B, KiB or MiB.
func sizeText(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
