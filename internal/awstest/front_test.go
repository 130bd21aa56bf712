package awstest

import "testing"

// TestValidSQSText checks the stand-in's character rule against the
// documented ranges, at their edges.
func TestValidSQSText(t *testing.T) {
	for s, want := range map[string]bool{
		"plain text\t\r\n":     true,
		"\u00e9\ud7ff":         true,
		"\ue000\ufffd":         true,
		"\U00010000\U0010FFFF": true,
		"":                     true,
		"\x00":                 false,
		"\x1f":                 false,
		"\ufffe":               false,
		"\uffff":               false,
		"\xff":                 false, // invalid UTF-8
		"\xed\xa0\x80":         false, // an encoded surrogate
	} {
		if got := ValidSQSText(s); got != want {
			t.Errorf("ValidSQSText(%q) = %v, want %v", s, got, want)
		}
	}
}
