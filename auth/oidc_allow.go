package auth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ErrSharedIssuer: the OIDC issuer serves accounts of any organisation and
// no allow-list (OIDCConfig.AllowedDomains, AllowedTenants) was given.
var ErrSharedIssuer = errors.New("the OIDC issuer is shared by every organisation: an allow-list of domains or tenants is required")

// sharedTenants are the path segments of Microsoft's multi-tenant issuers:
// "common", "organizations" and "consumers" endpoints, and the templated
// "{tenantid}" issuer their discovery documents name.
var sharedTenants = []string{"", "common", "organizations", "consumers", "{tenantid}",
	// The tenant of every personal Microsoft account: its issuer
	// (…/9188040d-…/v2.0) is the one that "consumers" tokens name.
	"9188040d-6c67-4c5b-b112-36a304b66dad"}

// microsoftHosts are Entra ID's login hosts (global and national clouds).
var microsoftHosts = []string{
	"login.microsoftonline.com", "login.windows.net", "sts.windows.net",
	"login.microsoftonline.us", "login.partner.microsoftonline.cn",
}

// SharedIssuer reports whether issuer is a multi-tenant issuer that signs
// tokens for accounts of any organisation (and any consumer) that can get
// one for the client ID: Google (https://accounts.google.com), and Entra ID's
// common, organizations, consumers and {tenantid} issuers. Trusting it
// without an allow-list admits the whole world (issue 8 item 19). It looks at
// the URL only; nothing is dialled.
func SharedIssuer(issuer string) bool {
	if !strings.Contains(issuer, "://") {
		issuer = "https://" + issuer
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	return isGoogleHost(host) || microsoftShared(host, u.Path)
}

func microsoftShared(host, path string) bool {
	if !slices.Contains(microsoftHosts, host) {
		return false
	}
	tenant, _, _ := strings.Cut(strings.Trim(path, "/"), "/")
	return slices.Contains(sharedTenants, strings.ToLower(tenant))
}

// isMicrosoftSharedIssuer reports whether issuer is one of Entra ID's
// multi-tenant issuers. Their email claim is not verified by anyone (any
// tenant's admin, or a personal account, can carry any address), so only a
// tenant allow-list restricts them.
func isMicrosoftSharedIssuer(issuer string) bool {
	if !strings.Contains(issuer, "://") {
		issuer = "https://" + issuer
	}
	u, err := url.Parse(issuer)
	return err == nil && microsoftShared(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), u.Path)
}

// sufficientFor reports why al does not restrict the shared issuer, or nil.
func (al allowList) sufficientFor(issuer string) error {
	switch {
	case !SharedIssuer(issuer):
		return nil
	case al.empty():
		return ErrSharedIssuer
	case len(al.tenants) == 0 && isMicrosoftSharedIssuer(issuer):
		return fmt.Errorf("%w (Entra ID's email claim is unverified: allowed domains alone do not restrict it)", ErrSharedIssuer)
	}
	return nil
}

func isGoogleHost(host string) bool { return host == "accounts.google.com" }

func isGoogleIssuer(issuer string) bool {
	if !strings.Contains(issuer, "://") {
		issuer = "https://" + issuer
	}
	u, err := url.Parse(issuer)
	return err == nil && isGoogleHost(strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")))
}

// allowList restricts which organisations' tokens are accepted.
type allowList struct {
	domains []string // lowercased
	tenants []string // lowercased
}

func newAllowList(domains, tenants []string) allowList {
	norm := func(in []string) []string {
		var out []string
		for _, s := range in {
			if s = strings.ToLower(strings.TrimSpace(s)); s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		return out
	}
	return allowList{domains: norm(domains), tenants: norm(tenants)}
}

func (al allowList) empty() bool { return len(al.domains) == 0 && len(al.tenants) == 0 }

// check admits a token's claims. Tenants: the "tid" claim (Entra ID) must be
// listed. Domains: the "hd" claim (Google Workspace's hosted domain) must be
// listed; without "hd", the verified email's domain must be — except for
// Google, which gives verified addresses on any domain to consumer accounts,
// so there only "hd" proves the organisation. (Entra ID's email claim is not
// verified by the tenant either: with Entra, allow tenants.)
func (al allowList) check(issuer string, claims map[string]any, user string) error {
	if len(al.tenants) > 0 {
		tid, _ := claims["tid"].(string)
		if !slices.Contains(al.tenants, strings.ToLower(tid)) {
			return fmt.Errorf("tenant %q not allowed", tid)
		}
	}
	if len(al.tenants) == 0 && isMicrosoftSharedIssuer(issuer) {
		return errors.New("no tenant allow-list for a shared Entra ID issuer (its email claim is unverified)")
	}
	if len(al.domains) > 0 {
		if hd, _ := claims["hd"].(string); hd != "" {
			if !slices.Contains(al.domains, strings.ToLower(hd)) {
				return fmt.Errorf("hosted domain %q not allowed", hd)
			}
			return nil
		}
		if isGoogleIssuer(issuer) {
			return errors.New("no hd claim (not a Workspace account of an allowed domain)")
		}
		email, _ := claims["email"].(string)
		if email == "" {
			email = user
		}
		at := strings.LastIndexByte(email, '@')
		if at < 0 || isFalse(claims["email_verified"]) {
			return errors.New("no verified email to match the allowed domains")
		}
		if !slices.Contains(al.domains, strings.ToLower(email[at+1:])) {
			return fmt.Errorf("email domain %q not allowed", email[at+1:])
		}
	}
	return nil
}

// CheckIssuerAllowList reports, without dialling anything, whether the given
// allow-lists restrict issuer enough: nil for an issuer that is not shared,
// ErrSharedIssuer (wrapped with the reason) when a shared issuer has none, or
// an Entra ID shared issuer has no tenant list. Configuration validation
// calls it so that the same rule refuses the start as refuses the tokens.
func CheckIssuerAllowList(issuer string, domains, tenants []string) error {
	return newAllowList(domains, tenants).sufficientFor(issuer)
}
