package auth

import (
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// TestSyntheticHashDoesTheWork: the hash an unknown user's password is
// compared with has the file's cost, is accepted by bcrypt as a hash (so
// the comparison hashes the password at that cost, and only then finds a
// mismatch: bcrypt.ErrMismatchedHashAndPassword comes after that work,
// a malformed hash would fail at once with another error), never matches,
// and differs from one backend to the next.
func TestSyntheticHashDoesTheWork(t *testing.T) {
	seen := map[string]bool{}
	for _, cost := range []int{bcrypt.MinCost, 5, 6, 10} {
		for i := range 20 {
			h := syntheticHash(cost)
			if c, err := bcrypt.Cost(h); err != nil || c != cost {
				t.Fatalf("syntheticHash(%d) = %s: cost %d, %v", cost, h, c, err)
			}
			if i > 0 && cost > bcrypt.MinCost {
				continue // comparing is slow (under -race most of all): a few are enough
			}
			for _, pw := range []string{"", "password", "no such user, no such password"} {
				if err := bcrypt.CompareHashAndPassword(h, []byte(pw)); !errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
					t.Fatalf("compare %q with %s: %v, want a mismatch after hashing", pw, h, err)
				}
			}
			if seen[string(h)] {
				t.Fatalf("syntheticHash repeated %s", h)
			}
			seen[string(h)] = true
		}
	}
	if c, _ := bcrypt.Cost(syntheticHash(99)); c != bcrypt.MaxCost {
		t.Fatalf("cost 99 clamped to %d, want %d", c, bcrypt.MaxCost)
	}
}
