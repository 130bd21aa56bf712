package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/edgerelay/edgerelay/internal/admin"
	"github.com/edgerelay/edgerelay/queue"
)

// Exit codes of "edgerelay queue".
const (
	queueExitError    = 1 // no running process, no permission, the queue failed
	queueExitUsage    = 2
	queueExitNotFound = 3 // no such message
)

// adminSocketName is the operator's socket in RELAY_DATA_DIR.
const adminSocketName = "admin.sock"

const queueUsage = `usage: edgerelay queue [--socket PATH | --url URL --token-file FILE] COMMAND
commands:
  list [--json]           every queued message: ID, age, size, attempts, next attempt,
                          state, sender, and each recipient's state and last reply
  show ID [--json]        one message's envelope and recipients
  show ID --body          the message as submitted, to stdout
  retry ID | retry --all  due now
  hold ID                 keep without delivering until released
  release ID              end the hold; due now
  bounce ID               fail the pending recipients (5.3.0 "deleted by the operator"), NDR to the sender
  delete ID               remove without a report (logged)
The running edgerelay is reached through $RELAY_DATA_DIR/admin.sock (mode 0600:
run as the same user, e.g. docker exec CONTAINER /edgerelay queue list), or over
HTTP with --url and the RELAY_ADMIN_TOKEN in --token-file. With RELAY_QUEUE=sqs
the commands work on the SQS + S3 queue itself (its configuration and AWS
credentials in the environment), no running process needed.
exit status: 0 done, 1 error, 2 usage, 3 no such message`

// queueCommand runs "edgerelay queue ..." against the running process.
func queueCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("edgerelay queue", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", "", "")
	url := fs.String("url", "", "")
	tokenFile := fs.String("token-file", "", "")
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, "edgerelay queue:", msg)
		}
		fmt.Fprintln(stderr, queueUsage)
		return queueExitUsage
	}
	if err := fs.Parse(args); err != nil {
		return usage(err.Error())
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usage("")
	}
	cmd, rest := rest[0], rest[1:]
	sub := flag.NewFlagSet(cmd, flag.ContinueOnError)
	sub.SetOutput(io.Discard)
	asJSON := sub.Bool("json", false, "")
	body := sub.Bool("body", false, "")
	all := sub.Bool("all", false, "")
	// Flags may follow the ID too (show ID --body).
	var ids []string
	for {
		if err := sub.Parse(rest); err != nil {
			return usage(err.Error())
		}
		if sub.NArg() == 0 {
			break
		}
		ids = append(ids, sub.Arg(0))
		rest = sub.Args()[1:]
	}
	req := admin.Request{Op: cmd}
	switch cmd {
	case "list":
		if len(ids) > 0 || *body || *all {
			return usage("list takes no ID")
		}
		req.Op = admin.OpList
	case "show", "hold", "release", "bounce", "delete", "retry":
		if cmd == "retry" && *all {
			if len(ids) > 0 {
				return usage("retry takes an ID or --all, not both")
			}
			req.Op = admin.OpRetryAll
			break
		}
		if len(ids) != 1 {
			return usage(cmd + " takes one message ID")
		}
		req.ID = ids[0]
		if cmd == "show" && *body {
			req.Op = admin.OpBody
		}
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, queueUsage)
		return 0
	default:
		return usage(fmt.Sprintf("unknown command %q", cmd))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var bodyOut io.Writer
	if req.Op == admin.OpBody {
		bodyOut = stdout
	}
	var resp *admin.Response
	var err error
	where := ""
	switch {
	case *url != "":
		where = *url
		resp, err = httpCall(ctx, *url, *tokenFile, req, bodyOut)
	case *socket == "" && queueIsSQS():
		where = "RELAY_QUEUE=sqs"
		resp, err = sqsCall(ctx, req, bodyOut, stderr)
	default:
		path, dataDir := adminSocketPath(*socket)
		where = path
		resp, err = admin.Call(ctx, path, req, bodyOut)
		err = socketError(err, path, dataDir, *socket != "")
	}
	if err != nil {
		fmt.Fprintln(stderr, "edgerelay queue:", err)
		return queueExitError
	}
	if err := resp.Err(); err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			fmt.Fprintf(stderr, "edgerelay queue: no such message: %s\n", req.ID)
			return queueExitNotFound
		}
		fmt.Fprintf(stderr, "edgerelay queue: %s: %v\n", where, err)
		return queueExitError
	}
	if resp.Warning != "" {
		fmt.Fprintln(stderr, "edgerelay queue: warning:", resp.Warning)
	}
	return printQueueResponse(stdout, req, resp, *asJSON, time.Now())
}

// adminSocketPath is --socket, or admin.sock in RELAY_DATA_DIR (its
// default when unset), absolute as the server makes it.
func adminSocketPath(flagPath string) (path, dataDir string) {
	dataDir = os.Getenv("RELAY_DATA_DIR")
	if dataDir == "" {
		dataDir = configDefault("DataDir")
	}
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	if flagPath != "" {
		return flagPath, dataDir
	}
	return filepath.Join(dataDir, adminSocketName), dataDir
}

// socketError explains a failed call in the operator's terms.
func socketError(err error, path, dataDir string, explicit bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, admin.ErrNoServer):
		if explicit {
			return fmt.Errorf("no edgerelay is running behind %s (%v)", path, errors.Unwrap(err))
		}
		return fmt.Errorf("no edgerelay is running with RELAY_DATA_DIR=%s: socket %s not found or not answering (set RELAY_DATA_DIR as the server has it, or --socket)", dataDir, path)
	case errors.Is(err, admin.ErrPermission):
		return fmt.Errorf("no permission to use %s (mode 0600: run as the user edgerelay runs as, e.g. docker exec CONTAINER /edgerelay queue …)", path)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// printQueueResponse prints what a successful request returned.
func printQueueResponse(w io.Writer, req admin.Request, resp *admin.Response, asJSON bool, now time.Time) int {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		var v any = resp
		switch req.Op {
		case admin.OpList:
			v = resp.Entries
		case admin.OpShow:
			v = resp.Entry
		}
		if req.Op != admin.OpBody {
			enc.Encode(v)
		}
		return 0
	}
	switch req.Op {
	case admin.OpList:
		printQueueList(w, resp.Entries, now)
	case admin.OpShow:
		printQueueEntry(w, resp.Entry, now)
	case admin.OpBody:
	case admin.OpRetryAll:
		fmt.Fprintf(w, "%d message(s) due now\n", resp.Count)
	default:
		fmt.Fprintln(w, actionText(req, resp.Immediate))
	}
	return 0
}

// actionText says what an action did: done now, or recorded for the
// next worker that receives the message.
func actionText(req admin.Request, immediate bool) string {
	done := map[string]string{
		admin.OpRetry:   "due now",
		admin.OpHold:    "on hold",
		admin.OpRelease: "released, due now",
		admin.OpBounce:  "bounced: the worker fails its pending recipients and reports them now",
		admin.OpDelete:  "deleted",
	}[req.Op]
	if immediate {
		return req.ID + ": " + done
	}
	s := req.ID + ": " + req.Op + " recorded; it takes effect when a worker next receives the message " +
		"(a delivery in progress ends, or the SQS queue hands it out again)"
	if req.Op == admin.OpDelete || req.Op == admin.OpBounce {
		// A delivery under way may already have given the message to the
		// remote: a delete does not recall it.
		s += "; recipients a delivery in progress has already delivered stay delivered"
	}
	return s
}
