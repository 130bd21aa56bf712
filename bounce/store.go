package bounce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store is the dedicated store that holds the reports edgerelay writes
// and nothing else (ARCHITECTURE.md, "The bounce store").
type Store interface {
	// Put stores one report under key. Keys are deterministic per report, so
	// a retry after a crash finds the key present and stores nothing new:
	// each report is stored once. A key is a queue ID (queue.ValidID: the
	// copy of a report queued to the sender carries its key as its ID), and
	// Put refuses any other: it becomes a file name or object key.
	Put(ctx context.Context, key string, msg io.Reader) error
	// String names the store for logs ("maildir:/data/bounces", "s3://b/p").
	String() string
}

// Options are what Open needs besides the spec.
type Options struct {
	// QueueDirs are the queue's local directories (the spool). A maildir
	// bounce store may be none of them, inside none of them and contain
	// none of them.
	QueueDirs []string
	// S3 opens an "s3://bucket/prefix" store. It is set by the part of the
	// program that holds the S3 client; nil makes an s3:// spec an error.
	// The opener is responsible for its own dedication checks (marker
	// object; not the queue's bucket/prefix).
	S3 func(bucket, prefix string) (Store, error)
}

// Open opens the dedicated bounce store named by spec:
//
//   - "maildir:PATH" — a Maildir at PATH (see openMaildir for the rules
//     that keep it dedicated);
//   - "s3://bucket/prefix" — an S3 bucket and key prefix, opened by o.S3.
//
// Every error names the spec and says what is wrong; the program
// should refuse to start on one. Without o.S3, an s3:// spec fails with
// ErrNoS3Client.
func Open(spec string, o Options) (Store, error) {
	switch {
	case strings.HasPrefix(spec, "maildir:"):
		path := strings.TrimPrefix(spec, "maildir:")
		if path == "" {
			return nil, storeErr(spec, "no path after maildir:")
		}
		return openMaildir(spec, path, o.QueueDirs)
	case strings.HasPrefix(spec, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(spec, "s3://"), "/")
		if bucket == "" {
			return nil, storeErr(spec, "no bucket in s3://bucket/prefix")
		}
		if o.S3 == nil {
			return nil, fmt.Errorf("bounce store %q: %w", spec, ErrNoS3Client)
		}
		st, err := o.S3(bucket, strings.Trim(prefix, "/"))
		if err != nil {
			return nil, fmt.Errorf("bounce store %q: %w", spec, err)
		}
		return st, nil
	}
	return nil, storeErr(spec, "want maildir:PATH or s3://bucket/prefix")
}

// ErrNoS3Client is returned by Open for an s3:// spec when Options.S3 is
// nil: no S3 client was set up to open it with.
var ErrNoS3Client = errors.New("an s3 bounce store needs an S3 client, and none is set up")

func storeErr(spec, problem string) error {
	return fmt.Errorf("bounce store %q: %s", spec, problem)
}

// resolvePath returns p as a clean absolute path with symbolic links
// resolved as far as the path exists, so that two names of one directory
// compare equal.
func resolvePath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	// Resolve the longest existing ancestor and keep the rest as it is.
	rest := ""
	cur := abs
	for {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether path is dir or lies inside it; both are resolved.
func within(path, dir string) bool {
	if path == dir {
		return true
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(os.PathSeparator))
}

// checkNotQueue refuses a store path that is a queue directory, inside one,
// or holds one (ARCHITECTURE.md: the bounce store is never the queue's own
// location).
func checkNotQueue(spec, store string, queueDirs []string) error {
	for _, q := range queueDirs {
		if q == "" {
			continue
		}
		rq, err := resolvePath(q)
		if err != nil {
			return storeErr(spec, fmt.Sprintf("cannot resolve queue directory %q: %v", q, err))
		}
		switch {
		case store == rq:
			return storeErr(spec, fmt.Sprintf("is the queue directory %s; the bounce store must be a dedicated directory of its own", rq))
		case within(store, rq):
			return storeErr(spec, fmt.Sprintf("is inside the queue directory %s; the bounce store must be a dedicated directory outside the queue", rq))
		case within(rq, store):
			return storeErr(spec, fmt.Sprintf("contains the queue directory %s; the bounce store must be a dedicated directory that holds nothing else", rq))
		}
	}
	return nil
}
