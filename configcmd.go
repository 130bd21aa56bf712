package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// configVar is one variable as "edgerelay config" prints it.
type configVar struct {
	Name    string `json:"name"`
	Value   string `json:"value"`   // effective; a secret's is "(set)" or ""
	Default bool   `json:"default"` // not set in the environment (nor read from a _FILE)
	Secret  bool   `json:"secret"`
	From    string `json:"from,omitempty"` // the _FILE variable a secret was read from
}

// configCommand runs "edgerelay config [--json]": every RELAY_* variable
// with its effective value (after validation: derived defaults filled in,
// paths absolute, _FILE secrets read) and whether it was set or is the
// default. Secrets (fields tagged secret:"true") are never printed: their
// value shows as "(set)" or empty. An invalid configuration prints the
// same lines as startup (serveMain) and exits 2. It reads the environment
// and the _FILE secrets only: validation opens no connection and looks up
// no name (TestConfigCommandNoNetwork).
func configCommand(args []string, stdout, stderr io.Writer) int {
	asJSON := false
	for _, a := range args {
		switch a {
		case "--json", "-json":
			asJSON = true
		case "-h", "--help", "help":
			fmt.Fprintln(stdout, "usage: edgerelay config [--json]\nPrints every RELAY_* variable's effective value, (set) or (default); secrets as (set). Exit 2 with the startup errors when the configuration is invalid.")
			return 0
		default:
			fmt.Fprintf(stderr, "edgerelay config: unknown argument %q (usage: edgerelay config [--json])\n", a)
			return 2
		}
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay: configuration error:\n%s\n", err) // as serveMain
		return 2
	}
	vars := cfg.effective()
	for _, name := range unknownRelayVars(vars) {
		fmt.Fprintf(stderr, "edgerelay config: %s is set, but edgerelay reads no such variable (misspelt?)\n", name)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(vars); err != nil {
			fmt.Fprintf(stderr, "edgerelay config: %v\n", err)
			return 1
		}
		return 0
	}
	for _, v := range vars {
		mark := "(set)"
		switch {
		case v.From != "":
			mark = "(from " + v.From + ")"
		case v.Default:
			mark = "(default)"
		}
		fmt.Fprintf(stdout, "%s=%s %s\n", v.Name, quoteValue(v.Value), mark)
	}
	return 0
}

// effective lists c's variables in the struct's order, as configCommand
// prints them.
func (c *Config) effective() []configVar {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	names := map[string]int{} // NAME -> field index
	for i := range t.NumField() {
		if n := t.Field(i).Tag.Get("envconfig"); n != "" {
			names[n] = i
		}
	}
	var out []configVar
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			continue
		}
		key := envPrefix + "_" + name
		cv := configVar{Name: key, Value: fieldString(v.Field(i)), Default: !c.set[key], Secret: f.Tag.Get("secret") == "true"}
		if cv.Secret {
			if j, ok := names[name+"_FILE"]; ok && v.Field(j).String() != "" && cv.Value != "" && !c.set[key] {
				cv.From, cv.Default = envPrefix+"_"+name+"_FILE", false
			}
			if cv.Value != "" {
				cv.Value = "(set)"
			}
		} else {
			cv.Value = redactURLPasswords(cv.Value)
		}
		out = append(out, cv)
	}
	return out
}

// fieldString writes a field's value as it would be set: durations as
// 4h or 90s, not 4h0m0s.
func fieldString(f reflect.Value) string {
	switch {
	case f.Type() == reflect.TypeFor[time.Duration]():
		return shortDuration(time.Duration(f.Int()))
	case f.Kind() == reflect.Bool:
		return strconv.FormatBool(f.Bool())
	case f.CanInt():
		return strconv.FormatInt(f.Int(), 10)
	case f.Kind() == reflect.String:
		return f.String()
	}
	return fmt.Sprint(f.Interface())
}

// urlPassword matches the password of a URL's user information
// (scheme://user:password@host, RFC 3986 3.2.1), in a value that may hold
// a list of URLs.
var urlPassword = regexp.MustCompile(`(://[^/@\s:,|]*:)[^/@\s,|]*@`)

// redactURLPasswords hides the password of every URL in s: a value that
// is not a secret field can still carry one (a gateway or directory URL
// written with user:password@).
func redactURLPasswords(s string) string {
	return urlPassword.ReplaceAllString(s, "${1}(hidden)@")
}

// quoteValue returns s as it is when it reads unambiguously on one line,
// else Go-quoted: white space, quotes, control characters and bytes that
// are not UTF-8 (which would also reach the terminal as they are).
func quoteValue(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '\\' {
			return strconv.Quote(s)
		}
	}
	return s
}

// unknownRelayVars returns the RELAY_ variables set in the environment
// that are none of vars, sorted: most likely misspelt.
func unknownRelayVars(vars []configVar) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix+"_") {
			continue
		}
		if !slices.ContainsFunc(vars, func(v configVar) bool { return v.Name == k }) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
