package bounce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// markerName is the file that records that a Maildir is edgerelay's
// dedicated bounce store.
const markerName = ".edgerelay-bounce-store"

const markerText = "This Maildir is the dedicated bounce store of edgerelay: it holds the\n" +
	"delivery status notifications that edgerelay writes, and nothing else.\n" +
	"Do not deliver other mail or create folders here: edgerelay refuses to\n" +
	"start when it finds files it did not write.\n"

// msgSuffix ends the base name of every report file: new/<key>.edgerelay.
const msgSuffix = ".edgerelay"

// Maildir file names edgerelay writes (key, then msgSuffix), as an IMAP
// server may leave them: moved from new/ to cur/ with ":2,<flags>"
// appended, and possibly ",S=<size>" / ",W=<vsize>" before the colon.
var (
	ourMessageName = regexp.MustCompile(`^([A-Za-z0-9_-]{1,64})\.edgerelay(,[SW]=[0-9]+)*(:2,[A-Za-z]*)?$`)
	ourTmpName     = regexp.MustCompile(`^[0-9]+\.[0-9]+_[0-9]+\.[A-Za-z0-9_-]{1,64}\.edgerelay$`)
)

// Files that Dovecot writes into a Maildir it serves (index, UID list,
// keywords, subscriptions, the Maildir++ folder flag). They are tolerated in
// the store's top directory: serving the store over IMAP is its purpose.
var (
	dovecotNames    = []string{"dovecot-keywords", "dovecot-shared", "subscriptions", "maildirfolder"}
	dovecotPrefixes = []string{"dovecot-uidlist", "dovecot-uidvalidity", "dovecot.index", "dovecot.list.index", "dovecot.mailbox.log"}
)

func dovecotOwned(name string) bool {
	return slices.Contains(dovecotNames, name) || slices.ContainsFunc(dovecotPrefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// staleTmp is the age after which a file left in tmp/ by an interrupted Put
// is removed (the Maildir convention's 36 hours).
const staleTmp = 36 * time.Hour

// maildirStore is a Store in one Maildir.
type maildirStore struct {
	dir string
	mu  sync.Mutex // serializes the exists-check and the link into new/
	seq atomic.Uint64
	pid int
}

// openMaildir opens (creating on first use) the Maildir bounce store at
// path. It refuses:
//   - a path that is a queue directory, lies inside one or contains one;
//   - a path that is not a directory;
//   - a directory that holds anything besides the marker file, cur/, new/
//     and tmp/ with report files named as edgerelay names them, and the
//     files Dovecot keeps beside a Maildir it serves (dovecotNames,
//     dovecotPrefixes). Sub-folders (".Sent", Maildir++) are refused too:
//     the store holds no mailboxes.
//
// An empty directory, or one holding only such files, is adopted: the
// marker file is written.
func openMaildir(spec, path string, queueDirs []string) (*maildirStore, error) {
	dir, err := resolvePath(path)
	if err != nil {
		return nil, storeErr(spec, err.Error())
	}
	if err := checkNotQueue(spec, dir, queueDirs); err != nil {
		return nil, err
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, storeErr(spec, err.Error())
		}
	case err != nil:
		return nil, storeErr(spec, err.Error())
	case !st.IsDir():
		return nil, storeErr(spec, "is not a directory")
	}
	hasMarker, foreign, err := scanMaildir(dir)
	if err != nil {
		return nil, storeErr(spec, err.Error())
	}
	if len(foreign) > 0 {
		more := ""
		if len(foreign) > 5 {
			more = fmt.Sprintf(" and %d more", len(foreign)-5)
			foreign = foreign[:5]
		}
		return nil, storeErr(spec, fmt.Sprintf("holds files edgerelay did not write (%s%s); the bounce store must be dedicated to edgerelay's reports: use an empty or new directory", strings.Join(foreign, ", "), more))
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, storeErr(spec, err.Error())
		}
	}
	m := &maildirStore{dir: dir, pid: os.Getpid()}
	if !hasMarker {
		if err := m.writeMarker(); err != nil {
			return nil, storeErr(spec, err.Error())
		}
	}
	if err := safefile.SyncDir(dir); err != nil {
		return nil, storeErr(spec, err.Error())
	}
	m.removeStaleTmp(time.Now())
	return m, nil
}

// scanMaildir lists what in dir edgerelay did not write, relative to dir.
func scanMaildir(dir string) (hasMarker bool, foreign []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == markerName && e.Type().IsRegular():
			hasMarker = true
		case (name == "cur" || name == "new" || name == "tmp") && e.IsDir():
			subs, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return false, nil, err
			}
			for _, s := range subs {
				ok := s.Type().IsRegular() && (ourMessageName.MatchString(s.Name()) || name == "tmp" && ourTmpName.MatchString(s.Name()))
				if !ok {
					foreign = append(foreign, name+"/"+s.Name())
				}
			}
		case dovecotOwned(name) && !e.IsDir():
			// Dovecot's own bookkeeping for the mailbox it serves.
		default:
			foreign = append(foreign, name)
		}
	}
	return hasMarker, foreign, nil
}

// String names the store for logs.
func (m *maildirStore) String() string { return "maildir:" + m.dir }

// Put delivers the report to new/<key>.edgerelay the Maildir way: written
// to tmp/ under a unique name, fsync'd, linked into new/ (never replacing a
// file), and new/ fsync'd. When a report with this key is already in new/
// or cur/ (an IMAP server moves read messages to cur/, appending flags),
// Put stores nothing: each report is stored once. Safe for concurrent use.
func (m *maildirStore) Put(ctx context.Context, key string, msg io.Reader) error {
	if !queue.ValidID(key) {
		return fmt.Errorf("maildir: invalid report key %q", key)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	base := key + msgSuffix
	if found, err := m.exists(base); err != nil || found {
		return err
	}
	tmp := filepath.Join(m.dir, "tmp", fmt.Sprintf("%d.%d_%d.%s", time.Now().UnixNano(), m.pid, m.seq.Add(1), base))
	if err := safefile.WriteNew(tmp, msg, 0o640); err != nil {
		return err
	}
	defer os.Remove(tmp)

	m.mu.Lock()
	found, err := m.exists(base)
	if err == nil && !found {
		err = os.Link(tmp, filepath.Join(m.dir, "new", base))
		switch {
		case errors.Is(err, fs.ErrExist):
			err = nil // stored by another process meanwhile
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			// File systems without hard links: rename, still under the
			// lock that made sure the name is free.
			err = os.Rename(tmp, filepath.Join(m.dir, "new", base))
		}
	}
	m.mu.Unlock()
	if err != nil || found {
		return err
	}
	return safefile.SyncDir(filepath.Join(m.dir, "new"))
}

// exists reports whether the report file base is in new/ or cur/.
func (m *maildirStore) exists(base string) (bool, error) {
	for _, p := range []string{filepath.Join(m.dir, "new", base), filepath.Join(m.dir, "cur", base)} {
		if _, err := os.Lstat(p); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, err
		}
	}
	f, err := os.Open(filepath.Join(m.dir, "cur"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if strings.HasPrefix(n, base) && len(n) > len(base) && (n[len(base)] == ':' || n[len(base)] == ',') {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// removeStaleTmp removes files of ours that interrupted Puts left in tmp/.
func (m *maildirStore) removeStaleTmp(now time.Time) {
	entries, err := os.ReadDir(filepath.Join(m.dir, "tmp"))
	if err != nil {
		return
	}
	for _, e := range entries {
		if !ourTmpName.MatchString(e.Name()) {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleTmp {
			os.Remove(filepath.Join(m.dir, "tmp", e.Name()))
		}
	}
}

// writeMarker writes the marker file through tmp/ (under a name of ours,
// so that a crash leaves nothing foreign behind), fsync'd and renamed.
func (m *maildirStore) writeMarker() error {
	tmp := filepath.Join(m.dir, "tmp", fmt.Sprintf("%d.%d_%d.marker%s", time.Now().UnixNano(), m.pid, m.seq.Add(1), msgSuffix))
	if err := safefile.WriteNew(tmp, strings.NewReader(markerText), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, markerName)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
