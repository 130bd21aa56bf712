package relay

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/emersion/go-sasl"
)

// SASL mechanism names (RFC 4954 AUTH).
const (
	mechPlain       = "PLAIN"       // RFC 4616
	mechLogin       = "LOGIN"       // draft-murchison-sasl-login; Outlook and older clients
	mechOAuthBearer = "OAUTHBEARER" // RFC 7628
	mechXOAuth2     = "XOAUTH2"     // Google/Microsoft bearer-token format
)

// passwordFunc checks a user name and password and returns nil or the
// *smtp.SMTPError to send.
type passwordFunc func(authzid, user, password string) error

// tokenFunc checks a bearer token; user is the SASL authorization identity
// (may be empty). It returns nil or the *smtp.SMTPError to send.
type tokenFunc func(user, token string) error

// newPlainServer is RFC 4616 PLAIN: one message "authzid NUL authcid NUL
// passwd". An authzid other than empty or the authcid would mean acting as
// someone else, which edgerelay does not allow.
func newPlainServer(check passwordFunc) sasl.Server {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		return check(identity, username, password)
	})
}

// loginServer is the LOGIN mechanism: the server prompts "Username:" and
// "Password:" (base64 by the SMTP layer); a client may send the user name as
// the initial response.
type loginServer struct {
	check passwordFunc
	step  int
	user  string
}

func (s *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.user = string(resp)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.check("", s.user, string(resp))
	}
	return nil, true, errAuthSyntax
}

// oauthServer serves OAUTHBEARER (RFC 7628) and XOAUTH2. Both carry
// "auth=Bearer <token>" in ^A-separated key/value pairs. On failure the
// server sends a JSON error challenge (RFC 7628 §3.2.2), the client answers
// with a dummy response (^A for OAUTHBEARER, empty for XOAUTH2), and only
// then the failure reply ends the exchange.
type oauthServer struct {
	mech    string
	check   tokenFunc
	step    int
	failErr error
}

func (s *oauthServer) Next(resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		if resp == nil {
			// No initial response: ask for it with an empty challenge.
			s.step = 1
			return []byte{}, false, nil
		}
		fallthrough
	case 1:
		s.step = 2
		user, token, ok := parseOAuth(s.mech, resp)
		if !ok {
			return nil, true, errAuthSyntax
		}
		err := s.check(user, token)
		if err == nil {
			return nil, true, nil
		}
		s.failErr = err
		if err == errBadCreds {
			// The error challenge; the client must answer before the final reply.
			status := "invalid_token"
			if s.mech == mechXOAuth2 {
				status = "401"
			}
			blob, _ := json.Marshal(map[string]string{"status": status, "schemes": "bearer", "scope": "openid email"})
			return blob, false, nil
		}
		return nil, true, err
	case 2:
		s.step = 3
		return nil, true, s.failErr
	}
	return nil, true, errAuthSyntax
}

// parseOAuth extracts the user and token from an OAUTHBEARER or XOAUTH2
// client response.
//
//	OAUTHBEARER: "n,a=user@example.org,^Ahost=…^Aport=…^Aauth=Bearer TOKEN^A^A"
//	XOAUTH2:     "user=user@example.org^Aauth=Bearer TOKEN^A^A"
func parseOAuth(mech string, resp []byte) (user, token string, ok bool) {
	kvs := resp
	if mech == mechOAuthBearer {
		// gs2-header: gs2-cb-flag "," [gs2-authzid] ","  (RFC 5801 §4)
		parts := bytes.SplitN(resp, []byte{','}, 3)
		if len(parts) != 3 || !bytes.Equal(parts[0], []byte("n")) && !bytes.Equal(parts[0], []byte("y")) {
			return "", "", false
		}
		if len(parts[1]) > 0 {
			a, found := bytes.CutPrefix(parts[1], []byte("a="))
			if !found {
				return "", "", false
			}
			// RFC 5801 saslname: "=2C" is ',' and "=3D" is '='.
			user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(string(a))
		}
		kvs = parts[2]
	}
	for _, kv := range bytes.Split(kvs, []byte{1}) {
		k, v, found := bytes.Cut(kv, []byte{'='})
		if !found {
			continue
		}
		switch string(k) {
		case "user":
			if mech == mechXOAuth2 {
				user = string(v)
			}
		case "auth":
			scheme, tok, found := strings.Cut(string(v), " ")
			if !found || !strings.EqualFold(scheme, "Bearer") {
				return "", "", false
			}
			token = strings.TrimSpace(tok)
		}
	}
	return user, token, token != ""
}
