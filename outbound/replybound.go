package outbound

import (
	"strings"
	"unicode/utf8"

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
	s = validUTF8(s)
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

// validUTF8 returns s with every byte that is not part of a valid UTF-8
// sequence replaced by U+FFFD (one per byte, as a reader sees them).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2)
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s) // n ≥ 1: the loop progresses
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// cutRunes returns a prefix of s of at most n bytes, cut where cutAt says.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return s[:cutAt(s, n)]
}

// cutAt returns where to cut b, which is longer than n ≥ 1 bytes, so that
// the first part is at most n bytes: at the start of a UTF-8 sequence when
// one lies within the UTFMax-1 bytes before n (a valid sequence is never
// split), and at n itself otherwise (bytes that are not UTF-8). The result
// is at least 1 when n is, so every loop that cuts there consumes at least
// one byte per iteration and ends in time linear in len(b): the rule for
// every loop over remote bytes (issue 8 item 4).
func cutAt[T string | []byte](b T, n int) int {
	for k := n; k > 0 && k > n-utf8.UTFMax; k-- {
		if utf8.RuneStart(b[k]) {
			return k
		}
	}
	return n
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
