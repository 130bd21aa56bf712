package dsn

import (
	"strings"
	"unicode/utf8"
)

// ValidUTF8 returns s with every byte that is not part of a valid UTF-8
// sequence replaced by U+FFFD (one per byte, as a reader sees them).
func ValidUTF8(s string) string {
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

// CutAt returns where to cut b, which is longer than n ≥ 1 bytes, so that
// the first part is at most n bytes: at the start of a UTF-8 sequence when
// one lies within the UTFMax-1 bytes before n (a valid sequence is never
// split), and at n itself otherwise (bytes that are not UTF-8). The result
// is at least 1 when n is, so every loop that cuts there consumes at least
// one byte per iteration and ends in time linear in len(b): the rule for
// every loop over remote bytes (issue 8 item 4).
func CutAt[T string | []byte](b T, n int) int {
	for k := n; k > 0 && k > n-utf8.UTFMax; k-- {
		if utf8.RuneStart(b[k]) {
			return k
		}
	}
	return n
}

// Clean removes control characters (CR and LF included) that would break
// the header structure; tabs become spaces. Bytes that are not UTF-8
// become U+FFFD: every field Compose writes is valid UTF-8 (RFC 6532 §3.2
// for the global types; ASCII fields are made so by ASCIIOnly).
func Clean(s string) string {
	s = ValidUTF8(s)
	if strings.ContainsFunc(s, isCtl) {
		s = strings.Map(cleanRune, s)
	}
	return shortenBlankRuns(s)
}

// maxBlankRun is the longest run of spaces or tabs that report text keeps:
// a longer one could not be folded without a line of white space alone
// (fold), so Clean and fold make it one space.
const maxBlankRun = 500

// shortenBlankRuns makes every run of more than maxBlankRun spaces one space.
func shortenBlankRuns(s string) string {
	long := strings.Repeat(" ", maxBlankRun+1)
	if !strings.Contains(s, long) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, long)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := i + len(long)
		for j < len(s) && s[j] == ' ' {
			j++
		}
		b.WriteString(s[:i])
		b.WriteByte(' ')
		s = s[j:]
	}
}

func cleanRune(r rune) rune {
	if r == '\t' {
		return ' '
	}
	if isCtl(r) {
		return -1
	}
	return r
}

func isCtl(r rune) bool { return r < ' ' || r == 0x7f }

// ASCIIOnly replaces non-ASCII and invalid bytes with '?', for fields that
// must be ASCII in a message/delivery-status.
func ASCIIOnly(s string) string {
	if IsASCII([]byte(s)) {
		return s
	}
	b := []byte(s)
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
		} else {
			out = append(out, '?')
		}
		b = b[n:]
	}
	return string(out)
}

// IsASCII reports whether b holds only 7-bit bytes.
func IsASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
