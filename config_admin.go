package main

// validateAdminToken checks that RELAY_ADMIN_TOKEN (or its _FILE, read
// before) can be sent in "Authorization: Bearer <token>": RFC 6750 §2.1's
// b64token, 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
// *"=". Anything else (a trailing space or tab a token file was saved
// with, a NUL, a non-ASCII letter) could never be presented: the handler
// trims the header's token, and /admin/ would refuse every request with
// only "the bearer token is not the admin token" to say why. The token
// itself is never printed.
func (c *Config) validateAdminToken(bad badFunc) {
	t := c.AdminToken
	if t == "" {
		return
	}
	i := 0
	for i < len(t) && b64tokenChar(t[i]) {
		i++
	}
	j := i
	for j < len(t) && t[j] == '=' {
		j++
	}
	if i == 0 || j != len(t) {
		pos := j + 1
		if i == 0 {
			pos = 1
		}
		bad("ADMIN_TOKEN", "cannot be sent as a bearer token (RFC 6750 §2.1: letters, digits and -._~+/, then '=' padding; no white space); byte %d of %d is not allowed", pos, len(t))
	}
}

func b64tokenChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
		b == '-' || b == '.' || b == '_' || b == '~' || b == '+' || b == '/'
}
