package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttackAdminTokenUnsendable: a RELAY_ADMIN_TOKEN that no bearer
// header can carry (RFC 6750 §2.1 b64token: letters, digits and
// -._~+/ then '=' padding) stops the start naming the variable. Before,
// a token file saved with a trailing space or tab (an editor's) made
// /admin/ refuse every request for good: the server trims the header's
// token, so not even edgerelay queue --token-file with the same file got
// in, and the 401 said only that the token was wrong.
func TestAttackAdminTokenUnsendable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	for _, tc := range []struct {
		env  map[string]string
		file string
		bad  bool
	}{
		{env: map[string]string{"RELAY_ADMIN_TOKEN": "e2e-admin-token"}},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": "abc+/~._-XYZ09=="}},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": ""}},
		{env: map[string]string{"RELAY_ADMIN_TOKEN_FILE": file}, file: "s3cret-token\n"},
		{env: map[string]string{"RELAY_ADMIN_TOKEN_FILE": file}, file: "s3cret-token \n", bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN_FILE": file}, file: "s3cret-token\t\r\n", bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": " s3cret"}, bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": "s3 cret"}, bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN_FILE": file}, file: "s3cret\x00\n", bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": "=abc"}, bad: true},
		{env: map[string]string{"RELAY_ADMIN_TOKEN": "tök"}, bad: true},
	} {
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RELAY_") {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		if tc.file != "" {
			os.WriteFile(file, []byte(tc.file), 0o600)
		}
		_, err := loadConfig()
		switch {
		case tc.bad && (err == nil || !strings.Contains(err.Error(), "RELAY_ADMIN_TOKEN")):
			t.Errorf("%q %q: %v; want an error naming RELAY_ADMIN_TOKEN", tc.env, tc.file, err)
		case tc.bad && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tök")):
			t.Errorf("the error shows the secret: %v", err)
		case !tc.bad && err != nil:
			t.Errorf("%q %q: %v", tc.env, tc.file, err)
		}
	}
}
