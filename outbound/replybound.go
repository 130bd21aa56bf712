package outbound

import (
	"strings"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// maxReplyText bounds the text of a reply (its lines joined by "\n") as it
// is recorded on a recipient. A remote may answer with any number of
// continuation lines (RFC 5321 §4.2.1 sets no limit on their count), and
// the reply travels on: into the envelope on every Reschedule (an SQS
// message is limited to 256 KiB, and the SQS backend sizes envelopes
// against this bound), into logs, and into reports. 512 bytes keep every
// reply a person needs to read; the rest is cut and marked.
const maxReplyText = queue.MaxReplyText

// maxRemoteMTA bounds the recorded RemoteMTA: a host name (RFC 1035: 255
// octets) plus the bracketed address.
const maxRemoteMTA = queue.MaxRemoteMTA

// truncMark ends a reply text that was cut.
const truncMark = " […]"

// recordable returns a copy of rep fit to be recorded: every line valid
// UTF-8 without control characters (invalid bytes become U+FFFD, tabs
// spaces; C0, DEL, C1 and U+FFFE/U+FFFF are dropped, so the text is also
// legal in XML and so in SQS), at most maxReplyText bytes of text, and an
// enhanced code kept only when it is a valid RFC 3463 code of the reply's
// class. The basic code is kept as it was (Reply.String renders a code out
// of range as "000").
func recordable(rep *queue.Reply) *queue.Reply {
	if rep == nil {
		return nil
	}
	out := &queue.Reply{Code: rep.Code}
	if validEnhanced(rep.Enhanced) && isEnhancedCode(rep.Enhanced, rep.Code) {
		out.Enhanced = rep.Enhanced
	}
	total, cut := 0, false
	for n, l := range rep.Lines {
		l = safeText(cutRunes(l, 4*maxReplyText)) // bounded work per line
		need := len(l)
		if n > 0 {
			need++ // the "\n" that joins it to the previous line
		}
		out.Lines = append(out.Lines, l)
		if total+need > maxReplyText {
			cut = true
			break
		}
		total += need
	}
	if cut {
		text := cutRunes(strings.Join(out.Lines, "\n"), maxReplyText-len(truncMark))
		out.Lines = strings.Split(strings.TrimRight(text, "\n")+truncMark, "\n")
	}
	return out
}

// safeText returns s as valid UTF-8 without control characters: invalid
// bytes become U+FFFD, tabs become spaces, other C0 controls, DEL, C1
// controls and the noncharacters U+FFFE and U+FFFF are dropped.
func safeText(s string) string {
	s = dsn.ValidUTF8(s)
	if !strings.ContainsFunc(s, unsafeRune) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case unsafeRune(r):
			return -1
		}
		return r
	}, s)
}

func unsafeRune(r rune) bool {
	return r < ' ' || (r >= 0x7f && r < 0xa0) || r == 0xfffe || r == 0xffff
}

// cutRunes returns a prefix of s of at most n bytes, cut where dsn.CutAt says.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return s[:dsn.CutAt(s, n)]
}

// recordableRemote returns the RemoteMTA text fit to be recorded: one line,
// valid UTF-8, bounded.
func recordableRemote(s string) string {
	s = safeText(s)
	if len(s) > maxRemoteMTA {
		s = cutRunes(s, maxRemoteMTA)
	}
	return s
}
