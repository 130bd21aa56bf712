package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// CheckPassword implements PasswordBackend with the resource owner password
// credentials grant (RFC 6749 §4.3) when OIDCConfig.PasswordGrant is set;
// otherwise it refuses every password (ErrBadCredentials), so an
// OIDCBackend added to the password chain by mistake never grants anything.
//
// The issuer's answer maps as RFC 6749 §5.2 defines it: "invalid_grant" is
// a wrong user name or password (ErrBadCredentials); any other error is our
// client's configuration or the issuer's trouble (ErrUnavailable), as are 5xx
// answers and network errors. The token received (the id_token, else the
// access token if it is a JWT) is verified exactly like a bearer token.
func (b *OIDCBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	if !b.cfg.PasswordGrant {
		return nil, fmt.Errorf("%w: OIDC password grant not enabled", ErrBadCredentials)
	}
	if user == "" || password == "" {
		return nil, fmt.Errorf("%w: empty user name or password", ErrBadCredentials)
	}
	s, err := b.discover(ctx)
	if err != nil {
		return nil, err
	}
	if s.tokenURL == "" {
		return nil, fmt.Errorf("%w: issuer has no token_endpoint", ErrUnavailable)
	}
	tok, err := b.passwordGrant(ctx, s.tokenURL, user, password)
	if err != nil {
		return nil, err
	}
	return b.verify(ctx, s, tok)
}

// passwordGrant posts the grant and returns the token to verify.
func (b *OIDCBackend) passwordGrant(ctx context.Context, tokenURL, user, password string) (string, error) {
	form := url.Values{
		"grant_type": {"password"},
		"username":   {user},
		"password":   {password},
		"scope":      {strings.Join(b.cfg.Scopes, " ")},
	}
	if b.cfg.ClientSecret == "" {
		form.Set("client_id", b.cfg.ClientID) // public client, RFC 6749 §2.3
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("%w: token request: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if b.cfg.ClientSecret != "" {
		// client_secret_basic: RFC 6749 §2.3.1 form-encodes both parts
		// before they go into the Basic credentials.
		req.SetBasicAuth(url.QueryEscape(b.cfg.ClientID), url.QueryEscape(b.cfg.ClientSecret))
	}
	resp, err := b.client.Do(req)
	if err != nil {
		// The URL in a *url.Error is the token endpoint; the body (with
		// the password) is not part of the message.
		return "", fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return "", fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, err)
	}
	var r struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	jsonErr := json.Unmarshal(body, &r)
	switch {
	case resp.StatusCode == http.StatusOK && jsonErr == nil:
	case (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized) && r.Error == "invalid_grant":
		return "", fmt.Errorf("%w: issuer: invalid_grant", ErrBadCredentials)
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized:
		b.log.Error("OIDC token endpoint refused our client", "status", resp.StatusCode, "error", r.Error, "description", r.Description)
		return "", fmt.Errorf("%w: token endpoint: %d %s", ErrUnavailable, resp.StatusCode, r.Error)
	default:
		return "", fmt.Errorf("%w: token endpoint: %s", ErrUnavailable, resp.Status)
	}
	switch {
	case r.IDToken != "":
		return r.IDToken, nil
	case isJWT(r.AccessToken):
		return r.AccessToken, nil
	}
	return "", errors.Join(ErrUnavailable, errors.New("token endpoint returned no id_token and no JWT access token"))
}
