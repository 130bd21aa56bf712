package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// HashCost is the bcrypt cost HashPassword uses. 12 takes roughly a quarter
// of a second on a current server core: slow for an attacker who stole the
// file, still fine for one SMTP login (successes are cached, see Options).
const HashCost = 12

// fileCheckEvery is how often, at most, CheckPassword looks at the users
// file's metadata to see whether it changed.
const fileCheckEvery = time.Second

// HashPassword returns a bcrypt hash of pw for the users file, in the "$2b$"
// form that htpasswd -B, Dovecot and Apache all read. Passwords longer than
// 72 bytes are refused (bcrypt would silently ignore the rest).
func HashPassword(pw []byte) (string, error) { return hashPassword(pw, HashCost) }

func hashPassword(pw []byte, cost int) (string, error) {
	if len(pw) == 0 {
		return "", errors.New("auth: empty password")
	}
	h, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return "", fmt.Errorf("auth: hashing password: %w", err)
	}
	// x/crypto writes "$2a$"; its output is the corrected (post-2011)
	// algorithm that "$2b$" names, so relabel it.
	return "$2b$" + strings.TrimPrefix(string(h), "$2a$"), nil
}

// FileBackend checks passwords against a users file, one user a line:
//
//	username:bcrypt-hash[:address,address...]
//
// The hash is what `htpasswd -nB user` or `edgerelay hash-password` prints
// ($2a$, $2b$ or $2y$). A user name that is an email address is also an
// allowed sender; the optional third field lists more. Lines starting with
// '#' and blank lines are ignored. User names are matched without regard to
// ASCII case (mail clients are inconsistent about the case people type), so
// two lines differing only in case are duplicates.
//
// A malformed line is logged with its line number and skipped: it never
// authenticates anyone. When the same user appears twice, the first line
// wins and the later one is skipped.
//
// The file is re-read when its size, modification time or inode changes,
// checked at most once a second when a password is checked. If the file
// becomes unreadable or disappears, the last good set stays in use and an
// error is logged.
//
// FileBackend is safe for concurrent use.
type FileBackend struct {
	path       string
	log        *slog.Logger
	checkEvery time.Duration

	users atomic.Pointer[userSet]

	mu        sync.Mutex // serialises reloads; never held while comparing hashes
	lastCheck time.Time
	stamp     fileStamp
	failed    bool // the last reload attempt failed (avoid logging each second)
}

// fileUser is one valid line of the users file.
type fileUser struct {
	name      string
	hash      []byte
	addresses []string
}

// userSet is one parsed generation of the users file.
type userSet struct {
	byName map[string]*fileUser // key: strings.ToLower(name)
	dummy  []byte               // a hash at the file's usual cost, for unknown users
}

// NewFileBackend reads the users file at path. A missing or unreadable file
// is an error naming the path; malformed lines are only logged. logger may be
// nil.
func NewFileBackend(path string, logger *slog.Logger) (*FileBackend, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &FileBackend{path: path, log: logger.With("backend", "file", "path", path), checkEvery: fileCheckEvery}
	st, err := statFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: users file %s: %w", path, err)
	}
	set, err := f.load()
	if err != nil {
		return nil, fmt.Errorf("auth: users file %s: %w", path, err)
	}
	f.users.Store(set)
	f.stamp = st
	f.lastCheck = time.Now()
	return f, nil
}

// Name implements PasswordBackend.
func (f *FileBackend) Name() string { return "file" }

// Len reports how many users the current generation of the file holds.
func (f *FileBackend) Len() int { return len(f.users.Load().byName) }

// CheckPassword implements PasswordBackend. An unknown user and a wrong
// password give the same error after the same amount of work: for an unknown
// user the password is compared against a dummy hash of the file's cost.
func (f *FileBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	f.maybeReload()
	set := f.users.Load()
	u, ok := set.byName[strings.ToLower(user)]
	hash := set.dummy
	if ok {
		hash = u.hash
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if !ok || err != nil {
		// One message for both cases, so the log line (which may reach
		// an operator's dashboard) does not reveal which user names exist
		// any more than the SMTP reply does.
		return nil, fmt.Errorf("%w: unknown user or wrong password", ErrBadCredentials)
	}
	return &Identity{User: u.name, Addresses: append([]string(nil), u.addresses...), Backend: f.Name(),
		Canonical: "file:" + strings.ToLower(u.name)}, nil
}

// maybeReload re-reads the file when its metadata changed, at most once per
// checkEvery. Concurrent callers do not wait for a reload in progress: they
// use the current set.
func (f *FileBackend) maybeReload() {
	if !f.mu.TryLock() {
		return
	}
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.lastCheck) < f.checkEvery {
		return
	}
	f.lastCheck = now
	st, err := statFile(f.path)
	if err != nil {
		if !f.failed {
			f.log.Error("users file unreadable; keeping the last good set", "err", err, "users", f.Len())
			f.failed = true
		}
		return
	}
	if st == f.stamp && !f.failed {
		return
	}
	set, err := f.load()
	if err != nil {
		if !f.failed {
			f.log.Error("users file unreadable; keeping the last good set", "err", err, "users", f.Len())
			f.failed = true
		}
		return
	}
	f.users.Store(set)
	f.stamp = st
	f.failed = false
	f.log.Info("users file reloaded", "users", len(set.byName))
}

// load reads and parses the file. Only an unreadable file is an error.
func (f *FileBackend) load() (*userSet, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	users, costs := parseUsers(data, f.log)
	set := &userSet{byName: users}
	set.dummy = f.dummyFor(commonCost(costs))
	return set, nil
}

// dummyFor returns the hash an unknown user's password is compared with: a
// bcrypt hash at cost whose salt and digest are random (syntheticHash).
// Comparing with it costs what comparing with a real hash of that cost does
// and never matches; making it costs nothing, where hashing a password at
// cost 12 took about 190 ms at every start and every reload.
func (f *FileBackend) dummyFor(cost int) []byte {
	if cur := f.users.Load(); cur != nil {
		if c, err := bcrypt.Cost(cur.dummy); err == nil && c == cost {
			return cur.dummy
		}
	}
	return syntheticHash(cost)
}

// bcryptAlphabet is bcrypt's base-64 alphabet.
const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// syntheticHash is a well-formed "$2a$" bcrypt hash at cost (clamped to
// bcrypt's 4..31) with a random 22-character salt and 31-character digest.
// bcrypt.CompareHashAndPassword hashes the password with that salt at that
// cost and only then compares digests, so the work is the same as for a
// real user's hash (TestSyntheticHashDoesTheWork).
func syntheticHash(cost int) []byte {
	cost = min(max(cost, bcrypt.MinCost), bcrypt.MaxCost)
	var r [53]byte
	rand.Read(r[:])
	h := fmt.Appendf(nil, "$2a$%02d$", cost)
	for _, b := range r {
		h = append(h, bcryptAlphabet[int(b)%len(bcryptAlphabet)])
	}
	return h
}

// commonCost is the most frequent cost in the file, HashCost if none.
func commonCost(costs map[int]int) int {
	best, n := HashCost, 0
	for c, k := range costs {
		if k > n || (k == n && c > best) {
			best, n = c, k
		}
	}
	return best
}

// parseUsers parses a users file. Bad lines are logged and skipped. It also
// returns how many valid hashes use each bcrypt cost.
func parseUsers(data []byte, log *slog.Logger) (map[string]*fileUser, map[int]int) {
	users := make(map[string]*fileUser)
	costs := make(map[int]int)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, cost, err := parseUserLine(line)
		if err != nil {
			log.Warn("users file: line skipped", "line", lineNo, "reason", err.Error())
			continue
		}
		key := strings.ToLower(u.name)
		if _, dup := users[key]; dup {
			log.Warn("users file: line skipped", "line", lineNo, "reason", "duplicate user "+u.name)
			continue
		}
		users[key] = u
		costs[cost]++
	}
	if err := sc.Err(); err != nil {
		log.Warn("users file: stopped reading", "line", lineNo+1, "reason", err.Error())
	}
	return users, costs
}

// parseUserLine parses "user:hash[:addr,addr]". Errors never quote the hash.
func parseUserLine(line string) (*fileUser, int, error) {
	parts := strings.SplitN(line, ":", 3)
	if len(parts) < 2 {
		return nil, 0, errors.New("want user:hash[:addresses]")
	}
	name := strings.TrimSpace(parts[0])
	if name == "" {
		return nil, 0, errors.New("empty user name")
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, 0, errors.New("user name contains space or control characters")
	}
	hash := strings.TrimSpace(parts[1])
	cost, err := checkBcrypt(hash)
	if err != nil {
		return nil, 0, fmt.Errorf("user %s: %w", name, err)
	}
	u := &fileUser{name: name, hash: []byte(hash)}
	seen := make(map[string]bool)
	add := func(a string) {
		if k := strings.ToLower(a); !seen[k] {
			seen[k] = true
			u.addresses = append(u.addresses, a)
		}
	}
	if strings.Contains(name, "@") {
		if err := checkAddress(name); err == nil {
			add(name)
		}
	}
	if len(parts) == 3 {
		for a := range strings.SplitSeq(parts[2], ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if err := checkAddress(a); err != nil {
				return nil, 0, fmt.Errorf("user %s: address %q: %w", name, a, err)
			}
			add(a)
		}
	}
	return u, cost, nil
}

// checkBcrypt accepts the bcrypt variants htpasswd and libxcrypt write
// ($2a$, $2b$, $2y$ — all the same corrected algorithm for the passwords
// people type) and returns the cost. golang.org/x/crypto/bcrypt reads all
// three prefixes itself.
func checkBcrypt(h string) (int, error) {
	if len(h) != 60 || !(strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")) {
		return 0, errors.New("not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)")
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return 0, errors.New("malformed bcrypt hash")
	}
	return cost, nil
}

// checkAddress accepts a bare addr-spec (RFC 5321 §4.1.2 Mailbox) with a
// non-empty local part and domain. It is deliberately simple: the users file
// is written by an administrator, and the point is to catch typos.
func checkAddress(a string) error {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return errors.New("not local@domain")
	}
	if strings.ContainsAny(a, " \t<>,;:\"()[]\\") {
		return errors.New("unexpected character")
	}
	dom := a[at+1:]
	if strings.HasPrefix(dom, ".") || strings.HasSuffix(dom, ".") || strings.Contains(dom, "..") {
		return errors.New("malformed domain")
	}
	return nil
}
