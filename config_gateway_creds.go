package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// RELAY_GATEWAY_CREDENTIALS_FILE holds the credentials of gateways other
// than RELAY_GATEWAY's first SMTP one, as Postfix's sasl_passwd does:
//
//	# host              user                    password
//	relay2.example.net  relay@example.org       s3cret
//	[relay3.example]:465 other                  pa55word
//
// One entry a line, three fields separated by spaces or tabs, so a user or
// password cannot contain white space; a line whose first non-blank
// character is '#' is a comment, and blank lines are skipped. The host is
// a host name or IP, or host:port (Postfix's [host]:port too) for one
// gateway of that host: a host:port entry wins over a host entry. No field
// may hold a control character (a NUL would end a PLAIN user or password
// early, RFC 4616). A line is at most maxCredLine bytes.
//
// The file may not be writable by group or others: whoever can write it
// decides where the relay's mail is accepted and with which password.
// Read access is left to the operator (Kubernetes and Docker mount secrets
// 0644 or 0444 by default, inside a container where edgerelay is the only
// process). Errors name the line, never its content.

const maxCredLine = 4096

// maxCredFile bounds the credentials file.
const maxCredFile = 1 << 20

// gatewayCred is one credentials-file entry.
type gatewayCred struct {
	user, password string
	line           int
}

// gatewayCreds maps a lower-case host or host:port to its credentials.
type gatewayCreds map[string]gatewayCred

// lookup finds the entry for an SMTP gateway: host:port first, then host.
func (c gatewayCreds) lookup(g gatewayURL) (gatewayCred, bool) {
	if e, ok := c[g.Addr]; ok {
		return e, true
	}
	e, ok := c[g.Host]
	return e, ok
}

// parseGatewayCreds reads a credentials file (see above).
func parseGatewayCreds(r io.Reader) (gatewayCreds, error) {
	out := gatewayCreds{}
	br := bufio.NewReaderSize(r, maxCredLine+2)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line %d is longer than %d bytes", n, maxCredLine)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(strings.TrimSuffix(string(line), "\n")) > maxCredLine {
			return nil, fmt.Errorf("line %d is longer than %d bytes", n, maxCredLine)
		}
		if e := parseCredLine(out, string(line), n); e != nil {
			return nil, fmt.Errorf("line %d: %w", n, e)
		}
		if err != nil { // io.EOF
			return out, nil
		}
	}
}

// parseCredLine adds line n's entry, if any, to out.
func parseCredLine(out gatewayCreds, line string, n int) error {
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	t := strings.TrimLeft(line, " \t")
	if t == "" || t[0] == '#' {
		return nil
	}
	f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	for _, s := range f {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return errors.New("a control character (each field must be printable)")
		}
	}
	if len(f) != 3 {
		return fmt.Errorf("want 'host user password', found %d fields (a user or password cannot contain white space)", len(f))
	}
	key, ok := credKey(f[0])
	if !ok {
		return errors.New("the first field is not a host name, IP address or host:port")
	}
	if prev, dup := out[key]; dup {
		return fmt.Errorf("the host is listed on line %d already", prev.line)
	}
	out[key] = gatewayCred{user: f[1], password: f[2], line: n}
	return nil
}

// credKey reads a credentials file's host field: host, host:port,
// [host]:port or [host], lower-cased as gatewayURL's Host and Addr are.
func credKey(s string) (string, bool) {
	host, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", false
			}
			port = port[1:]
			if port == "" {
				return "", false
			}
		}
	case strings.Count(s, ":") == 1:
		host, port, _ = strings.Cut(s, ":")
	}
	if !validGatewayHost(host) {
		return "", false
	}
	host = strings.ToLower(host)
	if port == "" {
		return host, true
	}
	if !validPort(port) {
		return "", false
	}
	return net.JoinHostPort(host, port), true
}

// readGatewayCreds reads the file at path (empty: none), refusing one that
// group or others may write.
func readGatewayCreds(path string) (gatewayCreds, error) {
	if path == "" {
		return gatewayCreds{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %04o): chmod 600 it", path, st.Mode().Perm())
	}
	if st.Size() > maxCredFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCredFile)
	}
	// Read one byte more than allowed: a file that grew since Stat is
	// refused too, never cut (a cut can fall inside a password).
	data, err := io.ReadAll(io.LimitReader(f, maxCredFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCredFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCredFile)
	}
	c, err := parseGatewayCreds(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
