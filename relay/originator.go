package relay

import (
	"io"
	"mime"
	"net/mail"
	"strings"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
)

// originatorFields name who wrote and who sent a message (RFC 5322 §3.6.2)
// and who re-sent it (§3.6.6). A user may put only their own addresses in
// any of them: recipients' mail programs show Sender and Resent-From too
// ("ceo@corp.example on behalf of …").
var originatorFields = []string{"From", "Sender", "Resent-From", "Resent-Sender"}

// checkOriginators checks every originator field of h against the user's
// addresses. It returns nil, or the reply to refuse the message with and
// the address at fault. From must occur exactly once (RFC 5322 §3.6); the
// others may be absent.
//
// Unless nameAddrs allows it, a display name (or, as net/mail reads it, a
// comment after the address) that contains an address other than the
// user's is refused as well: mail programs show the name, often alone, so
// `"ceo@corp.example" <me@mine.example>` reads as mail from the CEO.
func checkOriginators(h *header, id *auth.Identity, nameAddrs bool) (*smtp.SMTPError, string) {
	if len(h.values("From")) != 1 {
		return errNoFrom, ""
	}
	for _, name := range originatorFields {
		for _, v := range h.values(name) {
			list, err := fromParser.ParseList(v)
			if err != nil || len(list) == 0 {
				if name == "From" {
					return errNoFrom, ""
				}
				return reply(550, 5, 6, 0, name+" header is malformed (RFC 5322 section 3.6.2)"), ""
			}
			for _, a := range list {
				if !id.MaySend(a.Address) {
					if name == "From" {
						return errHeaderFrom, a.Address
					}
					return reply(550, 5, 7, 1, name+" header address is not one of yours"), a.Address
				}
				if nameAddrs {
					continue
				}
				for _, x := range addressesIn(a.Name) {
					if !id.MaySend(x) {
						return reply(550, 5, 7, 1, name+" header display name contains an address that is not yours"), x
					}
				}
			}
			if nameAddrs {
				continue
			}
			// net/mail's Name is not all a mail program may show: a
			// group's name, a comment after a display name or with
			// quotes in it, an encoded word inside quotes are dropped
			// from it. Scan the whole field as a reader would see it.
			for _, x := range addressesIn(visibleText(v, list)) {
				if !id.MaySend(x) {
					return reply(550, 5, 7, 1, name+" header display name contains an address that is not yours"), x
				}
			}
		}
	}
	return nil, ""
}

// displayDecoder decodes encoded words (RFC 2047) for what a reader sees:
// in their charset when it is known (ISO-2022-JP writes a fullwidth at
// sign as "!w" in its JIS X 0208 mode), as they are otherwise.
var displayDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		if enc, err := htmlindex.Get(charset); err == nil {
			return enc.NewDecoder().Reader(input), nil
		}
		return input, nil
	},
}

// visibleText is a field value as a mail program may display it: encoded
// words decoded wherever they are (some decode them in quoted strings
// too), quoting backslashes removed, and each of the field's parsed
// addresses blanked where it stands as a whole token, so that only the
// text around the addresses is left for addressesIn.
func visibleText(v string, list []*mail.Address) string {
	if d, err := displayDecoder.DecodeHeader(v); err == nil {
		v = d
	}
	v = strings.ReplaceAll(v, "\\", "")
	seen := map[string]bool{} // once per address: the list may repeat one
	for _, a := range list {
		if k := asciiLower(a.Address); !seen[k] {
			seen[k] = true
			v = blankToken(v, a.Address)
		}
	}
	return v
}

// blankToken replaces each occurrence of addr in s (ASCII case ignored)
// that is not part of a longer address-like token with spaces.
func blankToken(s, addr string) string {
	if addr == "" {
		return s
	}
	b := []byte(s)
	// ASCII case only: strings.ToLower could change the length.
	lower, la := asciiLower(s), asciiLower(addr)
	edge := func(i int) bool { return strings.ContainsRune(" \t<>,;:()\"", rune(lower[i])) }
	for from := 0; ; {
		i := strings.Index(lower[from:], la)
		if i < 0 {
			return string(b)
		}
		i += from
		end := i + len(la)
		if (i == 0 || edge(i-1)) && (end == len(lower) || edge(end)) {
			for k := i; k < end; k++ {
				b[k] = ' '
			}
		}
		from = i + 1
	}
}

// nameSeparators end an address-like token inside a display name.
const nameSeparators = " \t<>\"'(),;:[]\\"

// addressesIn returns the address-like tokens (local@domain.tld) in a
// decoded display name. Look-alike at signs and full stops (fullwidth,
// small) count as the real ones, and control characters (NULs of a UTF-16
// encoded word that was not decoded) are dropped first: what matters is
// what a reader sees.
func addressesIn(name string) []string {
	if !strings.ContainsAny(name, "@\uff20\ufe6b") {
		return nil
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '\uff20' || r == '\ufe6b':
			return '@'
		case r == '\uff0e' || r == '\u3002' || r == '\ufe52':
			return '.'
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == '\u200b' || r == '\ufeff':
			return -1
		}
		return r
	}, name)
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] != '@' {
			continue
		}
		lo := i
		for lo > 0 && !strings.ContainsRune(nameSeparators+"@", rune(name[lo-1])) {
			lo--
		}
		hi := i + 1
		for hi < len(name) && !strings.ContainsRune(nameSeparators+"@", rune(name[hi])) {
			hi++
		}
		local, domain := name[lo:i], strings.Trim(name[i+1:hi], ".")
		if local != "" && strings.Contains(domain, ".") {
			out = append(out, local+"@"+domain)
		}
	}
	return out
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
