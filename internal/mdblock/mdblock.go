// Package mdblock reads the code blocks of a Markdown document that are
// marked for tests, so that a test can run the commands a document shows
// and a change to the document that breaks them fails the test. A marked
// block is a fenced block (```) whose opening fence follows, on the next
// line, an HTML comment naming it:
//
//	<!-- test: aws-local-relay -->
//	```sh
//	…
//	```
//
// The comment does not show when the document is rendered. Test support
// only: production code never imports it.
package mdblock

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

var marker = regexp.MustCompile(`^<!-- test: ([a-z0-9-]+) -->$`)

// Parse returns the content of every marked block of doc by name, without
// the fences. A marker not followed by a fence, an unterminated block and
// a name used twice are errors.
func Parse(doc string) (map[string]string, error) {
	lines := strings.Split(doc, "\n")
	blocks := map[string]string{}
	for i := 0; i < len(lines); i++ {
		m := marker.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		name := m[1]
		if _, dup := blocks[name]; dup {
			return nil, fmt.Errorf("line %d: block %q marked twice", i+1, name)
		}
		if i+1 >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "```") {
			return nil, fmt.Errorf("line %d: marker %q is not followed by a fenced block", i+1, name)
		}
		indent := lines[i+1][:strings.Index(lines[i+1], "```")]
		var body []string
		j := i + 2
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			body = append(body, strings.TrimPrefix(lines[j], indent))
		}
		if j == len(lines) {
			return nil, fmt.Errorf("line %d: block %q is not closed", i+2, name)
		}
		blocks[name] = strings.Join(body, "\n") + "\n"
		i = j
	}
	return blocks, nil
}

// File parses the Markdown file at path.
func File(path string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
