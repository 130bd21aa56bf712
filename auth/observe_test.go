package auth

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestObserveBackendCalls: Options.Observe gets one Check per backend call,
// labelled with the backend's name and ok, failed or tempfail; a cached
// success and a throttled attempt ask no backend and are not observed, and
// a panicking backend is observed as tempfail.
func TestObserveBackendCalls(t *testing.T) {
	var (
		mu  sync.Mutex
		got []Check
	)
	observe := func(c Check) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}
	take := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, c := range got {
			if c.Duration < 0 || c.Duration > time.Minute {
				t.Errorf("%+v: duration out of range", c)
			}
			out = append(out, c.Backend+":"+c.Result)
		}
		got = nil
		return out
	}
	file := &countingBackend{name: "file", users: map[string]string{"alice": "pw"}}
	ldap := &countingBackend{name: "ldap", users: map[string]string{"bob": "pw"}}
	a := New(Options{
		Password: []PasswordBackend{file, ldap}, Token: []TokenBackend{ldap, panicToken{}},
		MaxFailures: 2, FailureDelay: -1, CacheTTL: time.Minute, Observe: observe,
	})
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"first backend accepts", func() error { _, err := a.Password(ctx, "192.0.2.1", "alice", "pw"); return err },
			[]string{"file:ok"}},
		{"cached", func() error { _, err := a.Password(ctx, "192.0.2.1", "alice", "pw"); return err },
			nil},
		{"second backend accepts", func() error { _, err := a.Password(ctx, "192.0.2.1", "bob", "pw"); return err },
			[]string{"file:failed", "ldap:ok"}},
		{"directory down", func() error {
			ldap.down.Store(true)
			defer ldap.down.Store(false)
			_, err := a.Password(ctx, "192.0.2.2", "carol", "pw")
			return err
		}, []string{"file:failed", "ldap:tempfail"}},
		{"token: bad, then a panic", func() error { _, err := a.Token(ctx, "192.0.2.3", "", "nonsense"); return err },
			[]string{"ldap:failed", "panic:tempfail"}},
		{"wrong password", func() error { _, err := a.Password(ctx, "192.0.2.2", "dave", "x"); return err },
			[]string{"file:failed", "ldap:failed"}},
		{"throttled: no backend asked", func() error { _, err := a.Password(ctx, "192.0.2.2", "alice", "pw"); return err },
			nil},
	}
	for _, s := range steps {
		s.do()
		if g := take(); !slices.Equal(g, s.want) {
			t.Errorf("%s: observed %v, want %v", s.name, g, s.want)
		}
	}
}

func TestCheckResultOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{nil, CheckOK},
		{ErrBadCredentials, CheckFailed},
		{&RefusedEntryError{Canonical: "ldap:cn=x", Err: ErrBadCredentials}, CheckFailed},
		{ErrUnavailable, CheckTempFail},
		{ErrThrottled, CheckTempFail},
		{context.DeadlineExceeded, CheckTempFail},
	} {
		if got := checkResultOf(tt.err); got != tt.want {
			t.Errorf("checkResultOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
