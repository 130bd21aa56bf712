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
