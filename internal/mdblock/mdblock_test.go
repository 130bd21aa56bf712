package mdblock

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	doc := "# t\n<!-- test: one -->\n```sh\necho 1\n  echo 2\n```\ntext\n  <!-- test: two -->\n  ```\n  indented\n  ```\n```sh\nunmarked\n```\n"
	b, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 2 || b["one"] != "echo 1\n  echo 2\n" || b["two"] != "indented\n" {
		t.Fatalf("%q", b)
	}
	for _, bad := range []string{
		"<!-- test: x -->\ntext\n",
		"<!-- test: x -->\n```\nnot closed\n",
		"<!-- test: x -->\n```\n```\n<!-- test: x -->\n```\n```\n",
	} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
