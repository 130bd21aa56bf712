package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Dockerfile lint (issue 13). hadolint is neither a Debian package nor
// on the registries this project reaches, and BuildKit's parser
// (github.com/moby/buildkit/frontend/dockerfile/parser) is not among the
// Go modules known to be served here, so this small parser reads the
// Dockerfile's instructions and the test holds the rules that matter for
// this image.

// instruction is one Dockerfile instruction: its keyword (upper case),
// its arguments with continuation lines joined, and the line it starts on.
type instruction struct {
	Cmd  string
	Args string
	Line int
}

// parseDockerfile splits a Dockerfile into instructions: comment lines
// and blank lines are skipped (also inside a continued instruction, as
// BuildKit does), a line ending in a backslash continues on the next,
// and the keyword is the first word. It never fails: a line that is not
// an instruction is returned with its first word as the keyword, for the
// rules to refuse.
func parseDockerfile(src string) []instruction {
	var out []instruction
	var cur *instruction
	for i, line := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		cont := strings.HasSuffix(trimmed, `\`)
		trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, `\`))
		if cur == nil && trimmed == "" {
			continue // a lone backslash continues nothing
		}
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: i + 1})
			cur = &out[len(out)-1]
		} else if trimmed != "" {
			cur.Args = strings.TrimSpace(cur.Args + " " + trimmed)
		}
		if !cont {
			cur = nil
		}
	}
	return out
}

// defaultListeners are the ports the binary listens on with no
// configuration, from "edgerelay config --json".
func defaultListeners(t *testing.T) map[string]int {
	t.Helper()
	return listeners(t, effective(t, map[string]string{}))
}

// TestDockerfileLint: the rules, each a line of the Dockerfile:
//   - every FROM's image is a global ARG (declared before the first FROM,
//     with a default) or an earlier stage: a mirror or a pinned digest is
//     a --build-arg; the defaults are public images pinned to a tag (never
//     latest, never untagged) or scratch;
//   - COPY --from names an earlier stage; no ADD (never a URL: COPY only);
//   - the final stage runs as 65534:65534 (not root), with the image's
//     health check (edgerelay healthcheck), ENTRYPOINT /edgerelay in exec
//     form, STOPSIGNAL SIGTERM, EXPOSE exactly the default listeners'
//     ports, ENV only RELAY_ names the binary reads;
//   - WORKDIR is absolute;
//   - the binary is built with -tags lambda.norpc.
func TestDockerfileLint(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range lintDockerfile(string(raw), defaultListeners(t), effective(t, map[string]string{})) {
		t.Error("Dockerfile" + p)
	}
}

// lintDockerfile returns the problems of a Dockerfile, each ":LINE: …",
// against the binary's default listeners and its variables (names).
func lintDockerfile(src string, defaults map[string]int, names map[string]configVar) []string {
	ins := parseDockerfile(src)
	var problems []string
	bad := func(in instruction, format string, args ...any) {
		problems = append(problems, fmt.Sprintf(":%d: %s %s: "+format, append([]any{in.Line, in.Cmd, in.Args}, args...)...))
	}
	known := map[string]bool{"ARG": true, "FROM": true, "WORKDIR": true, "COPY": true, "RUN": true, "USER": true,
		"ENV": true, "VOLUME": true, "EXPOSE": true, "HEALTHCHECK": true, "STOPSIGNAL": true, "ENTRYPOINT": true,
		"CMD": true, "LABEL": true, "ADD": true}
	globalArgs := map[string]string{}
	var stages []string
	var final []instruction // the last stage's instructions
	seenFrom := false
	imageRef := regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?(@sha256:[0-9a-f]{64})?$`)
	for _, in := range ins {
		if !known[in.Cmd] {
			bad(in, "not an instruction this image uses")
			continue
		}
		switch in.Cmd {
		case "ARG":
			name, def, hasDef := strings.Cut(in.Args, "=")
			if !seenFrom {
				if !hasDef || def == "" {
					bad(in, "a global ARG needs a public default")
				}
				globalArgs[name] = def
			}
		case "FROM":
			seenFrom = true
			f := strings.Fields(in.Args)
			if len(f) != 1 && !(len(f) == 3 && strings.EqualFold(f[1], "AS")) {
				bad(in, "want FROM IMAGE [AS NAME]")
				continue
			}
			image := f[0]
			if m := regexp.MustCompile(`^\$\{?([A-Z_]+)\}?$`).FindStringSubmatch(image); m != nil {
				def, ok := globalArgs[m[1]]
				if !ok {
					bad(in, "%s is not a global ARG", m[1])
				}
				image = def
			} else if !slices.Contains(stages, image) {
				bad(in, "the base image must be a global ARG (mirrors, pinned digests), or an earlier stage")
			}
			if image != "scratch" && !slices.Contains(stages, image) {
				if !imageRef.MatchString(image) || !strings.ContainsAny(image, ":@") || strings.HasSuffix(image, ":latest") {
					bad(in, "%q: pin a tag (not latest) or a digest", image)
				}
			}
			if len(f) == 3 {
				stages = append(stages, f[2])
			}
			final = nil
		case "COPY":
			if m := regexp.MustCompile(`--from=(\S+)`).FindStringSubmatch(in.Args); m != nil && !slices.Contains(stages, m[1]) {
				bad(in, "--from=%s is not an earlier stage", m[1])
			}
		case "ADD":
			bad(in, "use COPY (ADD fetches URLs and unpacks archives)")
		case "WORKDIR":
			if !strings.HasPrefix(in.Args, "/") {
				bad(in, "not absolute")
			}
		}
		if seenFrom && in.Cmd != "FROM" {
			final = append(final, in)
		}
	}
	last := func(cmd string) (instruction, bool) {
		for i := len(final) - 1; i >= 0; i-- {
			if final[i].Cmd == cmd {
				return final[i], true
			}
		}
		problems = append(problems, ": the final stage has no "+cmd)
		return instruction{}, false
	}
	if u, ok := last("USER"); ok && u.Args != "65534:65534" {
		bad(u, "the image runs as 65534:65534 (nobody), never root")
	}
	if h, ok := last("HEALTHCHECK"); ok && !strings.HasSuffix(h.Args, `CMD ["/edgerelay", "healthcheck"]`) {
		bad(h, `want CMD ["/edgerelay", "healthcheck"]`)
	}
	if e, ok := last("ENTRYPOINT"); ok {
		var argv []string
		if json.Unmarshal([]byte(e.Args), &argv) != nil || !slices.Equal(argv, []string{"/edgerelay"}) {
			bad(e, `want the exec form ["/edgerelay"] (signals reach the process)`)
		}
	}
	if s, ok := last("STOPSIGNAL"); ok && s.Args != "SIGTERM" {
		bad(s, "edgerelay drains on SIGTERM")
	}
	if e, ok := last("EXPOSE"); ok {
		var got []int
		for _, p := range strings.Fields(e.Args) {
			n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
			if err != nil {
				bad(e, "%q is not a TCP port", p)
			}
			got = append(got, n)
		}
		var want []int
		for _, p := range defaults {
			want = append(want, p)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			bad(e, "the default listeners are %v", want)
		}
	}
	// The binary is built with -tags lambda.norpc: aws-lambda-go's retired
	// RPC mode keeps every exported method of every type in it (11.6 MB).
	for _, in := range ins {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") && !strings.Contains(in.Args, "-tags lambda.norpc") {
			bad(in, "build with -tags lambda.norpc")
		}
	}
	for _, in := range final {
		if in.Cmd != "ENV" {
			continue
		}
		for _, kv := range strings.Fields(in.Args) {
			k, _, _ := strings.Cut(kv, "=")
			if _, ok := names[k]; !ok {
				bad(in, "%s is not a variable edgerelay reads", k)
			}
		}
	}
	return problems
}

// TestDockerfileLintCatches: the parser, and each rule on a Dockerfile
// that breaks it (a rule that cannot fail checks nothing).
func TestDockerfileLintCatches(t *testing.T) {
	got := parseDockerfile("# syntax=docker/dockerfile:1\nFROM a:1 AS b\nRUN x \\\n  # comment\n\n  y\n\\\nCOPY --from=b /a /a\n")
	want := []instruction{{"FROM", "a:1 AS b", 2}, {"RUN", "x y", 3}, {"COPY", "--from=b /a /a", 8}}
	if !slices.Equal(got, want) {
		t.Fatalf("%+v", got)
	}
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	defaults, names := defaultListeners(t), effective(t, map[string]string{})
	for _, c := range []struct{ old, new, want string }{
		{"FROM ${GO_IMAGE} AS build", "FROM golang:1.26-bookworm AS build", "must be a global ARG"},
		{"ARG GO_IMAGE=golang:1.26-bookworm", "ARG GO_IMAGE=golang:latest", "not latest"},
		{"ARG GO_IMAGE=golang:1.26-bookworm", "ARG GO_IMAGE=golang", "pin a tag"},
		{"ARG RUNTIME_IMAGE=scratch", "ARG RUNTIME_IMAGE", "needs a public default"},
		{"USER 65534:65534", "USER root", "never root"},
		{"USER 65534:65534\n", "", "has no USER"},
		{"COPY --from=build /out/edgerelay", "ADD https://example.org/edgerelay", "use COPY"},
		{"COPY --from=build /out/edgerelay", "COPY --from=bulid /out/edgerelay", "not an earlier stage"},
		{`CMD ["/edgerelay", "healthcheck"]`, `CMD ["/bin/true"]`, "healthcheck"},
		{"EXPOSE 587 465 8080", "EXPOSE 25 587 465 8080", "default listeners"},
		{"EXPOSE 587 465 8080", "EXPOSE 587 8080", "default listeners"},
		{`ENTRYPOINT ["/edgerelay"]`, "ENTRYPOINT /edgerelay", "exec form"},
		{"STOPSIGNAL SIGTERM", "STOPSIGNAL SIGKILL", "SIGTERM"},
		{"ENV RELAY_DATA_DIR=/data", "ENV RELAY_DATADIR=/data", "not a variable"},
		{"WORKDIR /src", "WORKDIR src", "not absolute"},
		{"go build -tags lambda.norpc", "go build", "lambda.norpc"},
	} {
		if !strings.Contains(good, c.old) {
			t.Fatalf("the Dockerfile has no %q", c.old)
		}
		probs := lintDockerfile(strings.Replace(good, c.old, c.new, 1), defaults, names)
		if !slices.ContainsFunc(probs, func(p string) bool { return strings.Contains(p, c.want) }) {
			t.Errorf("%q -> %q: problems %q, want one saying %q", c.old, c.new, probs, c.want)
		}
	}
}

// FuzzDockerfileParse: any input, non-UTF-8, NULs, huge lines and
// endless continuations included, is parsed in time linear in its size
// into instructions whose lines increase and lie within the input, with
// no line end in their arguments.
func FuzzDockerfileParse(f *testing.F) {
	raw, _ := os.ReadFile("../Dockerfile")
	for _, s := range []string{string(raw), "", "\\", "FROM x \\\n\\\n\\", "\xff\x00FROM\r\n", strings.Repeat("RUN a \\\n", 1000), strings.Repeat("x", 1<<16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		done := make(chan []instruction, 1)
		go func() { done <- parseDockerfile(s) }()
		var ins []instruction
		select {
		case ins = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("hang on %d bytes", len(s))
		}
		lines := strings.Count(s, "\n") + 1
		prev := 0
		for _, in := range ins {
			if in.Line <= prev || in.Line > lines || strings.ContainsAny(in.Args, "\n") || in.Cmd == "" {
				t.Fatalf("%+v after line %d of %d", in, prev, lines)
			}
			prev = in.Line
		}
	})
}
