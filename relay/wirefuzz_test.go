package relay

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// FuzzSession is the stateful wire fuzzer (TESTING.md §2, issue 8). The
// fuzz input is decoded into a sequence of SMTP operations, sent to a real
// Server on 127.0.0.1 with a real spool in a temp dir, pipelined in fuzzed
// groups. A client-side model of the transaction follows every reply. The
// invariants checked:
//   - every 250 to a final dot or BDAT LAST is exactly one stored message
//     with that transaction's sender, recipients and body (the bytes the
//     server was sent are a suffix of the stored body, after the Received,
//     Date and Message-ID fix-ups);
//   - nothing else is stored;
//   - a valid command in a valid state is accepted (a transaction aborted
//     earlier must not refuse or empty the next one);
//   - every reply comes within 2 s (no wedged session);
//   - the goroutines return to their baseline after shutdown.
func FuzzSession(f *testing.F) {
	for _, seed := range sessionSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 512 {
			return // long inputs add time, not states
		}
		runSessionFuzz(t, decodeOps(in))
	})
}

// Fuzz operations: one byte of op code, one byte of argument.
const (
	opEHLO      = iota
	opMAIL      // arg%4: alice, her alias, bob (not hers: 553), <> (553); arg/4%8 sizes the message
	opRCPT      // arg%5 == 4: a malformed address (501)
	opDATA      // DATA and, after 354, the transaction's message
	opBDAT      // BDAT with the next arg*4 bytes of the message
	opBDATLast  // BDAT LAST with the rest of the message
	opBDATWrong // BDAT declaring fewer bytes than sent (the rest garbles a NOOP)
	opBDATHuge  // BDAT declaring and sending more than the size limit (552)
	opRSET
	opNOOP
	opQUIT
	opFlush // send the next arg%6+2 operations in one write
	opClose // close the connection now
	opPause // wait a millisecond before going on
	numOps
)

type fuzzOp struct{ code, arg byte }

func decodeOps(in []byte) []fuzzOp {
	var ops []fuzzOp
	for i := 0; i < len(in); i += 2 {
		op := fuzzOp{code: in[i] % numOps}
		if i+1 < len(in) {
			op.arg = in[i+1]
		}
		ops = append(ops, op)
	}
	return ops
}

func encodeOps(ops ...fuzzOp) []byte {
	var b []byte
	for _, o := range ops {
		b = append(b, o.code, o.arg)
	}
	return b
}

// sessionSeeds are the corpus that plain `go test` runs. The first is the
// issue 8 item 1 sequence: a BDAT chunk aborted by RSET, then a pipelined
// transaction.
var sessionSeeds = [][]byte{
	encodeOps(fuzzOp{opMAIL, 0}, fuzzOp{opRCPT, 0}, fuzzOp{opFlush, 4}, fuzzOp{opBDAT, 20},
		fuzzOp{opRSET, 0}, fuzzOp{opMAIL, 1}, fuzzOp{opRCPT, 1}, fuzzOp{opRCPT, 2}, fuzzOp{opPause, 0}, fuzzOp{opDATA, 0}),
	encodeOps(fuzzOp{opMAIL, 0}, fuzzOp{opRCPT, 0}, fuzzOp{opFlush, 4}, fuzzOp{opBDAT, 20},
		fuzzOp{opEHLO, 0}, fuzzOp{opMAIL, 1}, fuzzOp{opRCPT, 1}, fuzzOp{opDATA, 0}),
	encodeOps(fuzzOp{opMAIL, 0}, fuzzOp{opRCPT, 0}, fuzzOp{opFlush, 4}, fuzzOp{opBDAT, 20},
		fuzzOp{opBDATHuge, 0}, fuzzOp{opMAIL, 1}, fuzzOp{opRCPT, 1}, fuzzOp{opBDATLast, 0}),
	encodeOps(fuzzOp{opMAIL, 9}, fuzzOp{opRCPT, 0}, fuzzOp{opRCPT, 1}, fuzzOp{opDATA, 0}, fuzzOp{opQUIT, 0}),
	encodeOps(fuzzOp{opMAIL, 20}, fuzzOp{opRCPT, 3}, fuzzOp{opBDAT, 10}, fuzzOp{opBDATWrong, 3},
		fuzzOp{opBDATLast, 0}, fuzzOp{opNOOP, 0}),
	encodeOps(fuzzOp{opMAIL, 2}, fuzzOp{opRCPT, 4}, fuzzOp{opMAIL, 0}, fuzzOp{opMAIL, 0}, fuzzOp{opRCPT, 0},
		fuzzOp{opBDAT, 30}, fuzzOp{opClose, 0}),
}

// fuzzFixture is what every exec shares: building it costs more than an
// exec (bcrypt, key generation) and it keeps no per-session state.
var fuzzFixture = sync.OnceValues(func() (*fixture, error) {
	dir, err := os.MkdirTemp("", "edgerelay-fuzz-users")
	if err != nil {
		return nil, err
	}
	users := filepath.Join(dir, "users")
	var b strings.Builder
	for _, u := range [][3]string{{alice, alicePW, alias}, {bob, bobPW, ""}} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u[1]), bcrypt.MinCost)
		fmt.Fprintf(&b, "%s:%s", u[0], h)
		if u[2] != "" {
			fmt.Fprintf(&b, ":%s", u[2])
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(users, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	fb, err := auth.NewFileBackend(users, nil)
	if err != nil {
		return nil, err
	}
	cert, err := SelfSigned("relay.test")
	if err != nil {
		return nil, err
	}
	return &fixture{
		auth: auth.New(auth.Options{Password: []auth.PasswordBackend{fb}, FailureDelay: -1, MaxFailures: 1 << 30}),
		tls:  &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}, nil
})

type fixture struct {
	auth *auth.Authenticator
	tls  *tls.Config
}

// modelTxn is the client's view of one transaction.
type modelTxn struct {
	from    string
	rcpts   []string
	msg     string // the message the client means to send
	pos     int    // how much of msg went out in BDAT chunks
	recv    string // the bytes the server was told are the message
	bdat    bool   // a BDAT chunk was accepted: the server is in message transfer
	garbled bool   // a chunk was declared shorter than sent
}

// acked is a 250 to a final dot or BDAT LAST.
type acked struct {
	id    string
	from  string
	rcpts []string
	recv  string
}

type sessionRun struct {
	t       *testing.T
	conn    net.Conn
	tp      *textproto.Conn
	cur     *modelTxn
	ntxn    int
	acks    []acked
	pending []pendingReply
	out     bytes.Buffer
	groupN  int // operations left in the current pipelined group
	garbles int
	closed  bool
	log     []string
}

// pendingReply is a command sent whose reply is not read yet, and what to
// do with the reply.
type pendingReply struct {
	what   string
	handle func(code int, msg string)
}

func runSessionFuzz(t *testing.T, ops []fuzzOp) {
	fx, err := fuzzFixture()
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	q, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{
		Hostname: "relay.test", TLSConfig: fx.tls, InsecureAuth: true, Auth: fx.auth, Queue: q,
		MaxMessageBytes: 64 << 10, MaxRecipients: 3, CheckHeaderFrom: true, IdleTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := srv.Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	shutdown := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}
	r := &sessionRun{t: t}
	func() {
		defer func() {
			if r.conn != nil {
				r.conn.Close()
			}
		}()
		r.connect(addr.String())
		for _, op := range ops {
			if r.closed {
				break
			}
			r.do(op)
		}
		if !r.closed {
			r.flush()
		}
	}()
	shutdown()
	r.checkStored(q)
	q.Close()
	// Every goroutine the session started ends: the server's, the
	// spool's, a BDAT Data goroutine that was aborted.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines after shutdown, %d before:\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *sessionRun) fatalf(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nsession:\n%s", fmt.Sprintf(format, args...), strings.Join(r.log, "\n"))
}

func (r *sessionRun) connect(addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.conn, r.tp = c, textproto.NewConn(c)
	r.expectNow("greeting", 220)
	r.send("EHLO client.test", func(code int, msg string) { r.must("EHLO", code, msg, 250) })
	r.send("AUTH PLAIN "+plain(alice, alicePW), func(code int, msg string) { r.must("AUTH", code, msg, 235) })
	r.flush()
}

// send queues a command line; it goes out at the end of the current group.
func (r *sessionRun) send(line string, handle func(int, string)) {
	r.log = append(r.log, "C: "+printable(line))
	r.out.WriteString(line + "\r\n")
	r.pending = append(r.pending, pendingReply{what: line, handle: handle})
}

// raw queues bytes that get no reply of their own (chunk data).
func (r *sessionRun) raw(b string) {
	r.log = append(r.log, fmt.Sprintf("C: <%d bytes>", len(b)))
	r.out.WriteString(b)
}

// flush writes what is queued in one write and reads every reply owed.
func (r *sessionRun) flush() {
	if r.closed {
		return
	}
	if r.out.Len() > 0 {
		r.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := r.conn.Write(r.out.Bytes()); err != nil {
			r.fatalf("write: %v", err)
		}
		r.out.Reset()
	}
	for len(r.pending) > 0 && !r.closed {
		p := r.pending[0]
		r.pending = r.pending[1:]
		code, msg := r.read(p.what)
		if code == 0 {
			return
		}
		p.handle(code, msg)
	}
	r.pending = nil
}

// read reads one reply. The connection closing is allowed only after a
// reply that says so (421, 221, 500 "too many errors"); no reply within 2 s
// is a wedged session.
func (r *sessionRun) read(what string) (int, string) {
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	code, msg, err := r.tp.ReadResponse(0)
	if code == 0 && err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.fatalf("no reply to %q within 2 s", what)
		}
		r.closed = true // closed by the server after the previous reply
		r.log = append(r.log, "S: <closed>")
		return 0, ""
	}
	r.log = append(r.log, fmt.Sprintf("S: %d %s", code, printable(msg)))
	if code == 421 || code == 221 || strings.Contains(msg, "closing connection") || strings.Contains(msg, "Too many errors") {
		r.closed = true
	}
	return code, msg
}

func (r *sessionRun) expectNow(what string, code int) {
	got, msg := r.read(what)
	r.must(what, got, msg, code)
}

func (r *sessionRun) must(what string, code int, msg string, want int) {
	r.t.Helper()
	if code != want {
		r.fatalf("%s: got %d %s, want %d", what, code, msg, want)
	}
}

func printable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// endOp flushes at the end of a group (or after every op outside one).
func (r *sessionRun) endOp() {
	if r.groupN > 0 {
		r.groupN--
		if r.groupN > 0 {
			return
		}
	}
	r.flush()
}

// do sends one operation. The model predicts each reply and changes its
// state when the command is sent, so that pipelined commands are built on
// the state they will meet; a reply that is not the predicted one fails the
// run. Where the outcome cannot be predicted (a chunk that was declared
// shorter than sent), the group ends there and the state follows the reply.
func (r *sessionRun) do(op fuzzOp) {
	switch op.code {
	case opFlush:
		if r.groupN == 0 {
			r.groupN = int(op.arg%6) + 2
		}
		return
	case opClose:
		r.flush()
		r.log = append(r.log, "C: <close>")
		r.conn.Close()
		r.closed = true
		return
	case opPause:
		r.flush()
		time.Sleep(time.Millisecond)
		r.groupN = 0
		return
	case opDATA:
		// DATA waits for 354 (RFC 2920 §3.1): it ends a group.
		r.groupN = 0
		r.dataOp()
		return
	}
	switch op.code {
	case opEHLO:
		r.cur = nil
		r.send("EHLO client.test", func(code int, msg string) { r.must("EHLO", code, msg, 250) })
	case opMAIL:
		r.mailOp(op.arg)
	case opRCPT:
		r.rcptOp(op.arg)
	case opBDAT, opBDATLast, opBDATWrong:
		if r.bdatOp(op) {
			r.groupN = 0 // the outcome decides the state: wait for it
		}
	case opBDATHuge:
		want := 502 // no recipients: refused, the chunk discarded
		if r.cur != nil && len(r.cur.rcpts) > 0 {
			want = 552 // over the limit: go-smtp resets the transaction
			r.cur = nil
		}
		n := 70 * 1000
		r.send(fmt.Sprintf("BDAT %d", n), func(code int, msg string) { r.must("BDAT over the limit", code, msg, want) })
		r.raw(strings.Repeat(strings.Repeat("x", 998)+"\r\n", 70))
	case opRSET:
		r.cur = nil
		r.send("RSET", func(code int, msg string) { r.must("RSET", code, msg, 250) })
	case opNOOP:
		r.send("NOOP", func(code int, msg string) { r.must("NOOP", code, msg, 250) })
	case opQUIT:
		r.send("QUIT", func(code int, msg string) { r.must("QUIT", code, msg, 221) })
	}
	r.endOp()
}

var fuzzSenders = []string{alice, alias, bob, ""}

func (r *sessionRun) mailOp(arg byte) {
	from := fuzzSenders[arg%4]
	lines := int(arg/4%8) * 10
	cmd := "MAIL FROM:<" + from + ">"
	switch {
	case r.cur != nil:
		// RFC 5321 §4.1.4: no MAIL while a transaction is open.
		r.send(cmd, func(code int, msg string) { r.mustNot(cmd+" inside a transaction", code, msg) })
	case from == alice || from == alias:
		r.ntxn++
		r.cur = &modelTxn{from: from, msg: fuzzMessage(from, r.ntxn, lines)}
		r.send(cmd, func(code int, msg string) { r.must(cmd, code, msg, 250) })
	default:
		r.send(cmd, func(code int, msg string) { r.mustNot(cmd+" for "+alice, code, msg) })
	}
}

func (r *sessionRun) mustNot(what string, code int, msg string) {
	r.t.Helper()
	if code/100 == 2 {
		r.fatalf("%s: got %d %s, want a refusal", what, code, msg)
	}
}

func fuzzMessage(from string, n, lines int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nSubject: t%d\r\nMessage-ID: <%d.fuzz@client.test>\r\n\r\n", from, n, n)
	for i := range lines {
		fmt.Fprintf(&b, "line %03d %s\r\n", i, strings.Repeat("z", 50))
	}
	fmt.Fprintf(&b, "end %d\r\n", n)
	return b.String()
}

func (r *sessionRun) rcptOp(arg byte) {
	to := fmt.Sprintf("r%d@example.net", arg%5)
	if arg%5 == 4 {
		to = "nodomain"
	}
	cmd := "RCPT TO:<" + to + ">"
	cur := r.cur
	switch {
	case cur == nil || cur.bdat || to == "nodomain":
		r.send(cmd, func(code int, msg string) { r.mustNot(cmd+" outside a transaction or malformed", code, msg) })
	case len(cur.rcpts) >= 3:
		r.send(cmd, func(code int, msg string) { r.must(cmd+" past the limit", code, msg, 452) })
	default:
		cur.rcpts = append(cur.rcpts, to)
		r.send(cmd, func(code int, msg string) { r.must(cmd+" in a transaction from <"+cur.from+">", code, msg, 250) })
	}
}

// valid reports whether the transaction must be accepted at its end: a
// sender, a recipient, and exactly the message that the client meant.
func (m *modelTxn) valid() bool {
	return m != nil && len(m.rcpts) > 0 && !m.garbled && m.recv == m.msg
}

// final checks the reply to a final dot or BDAT LAST of transaction cur.
func (r *sessionRun) final(cur *modelTxn, what string, code int, msg string) {
	if code/100 != 2 {
		if cur.valid() {
			r.fatalf("%s: a valid transaction from <%s> to %q was refused: %d %s", what, cur.from, cur.rcpts, code, msg)
		}
		return
	}
	if code != 250 || !strings.Contains(msg, "queued as ") {
		r.fatalf("%s: unexpected success reply %d %s", what, code, msg)
	}
	r.acks = append(r.acks, acked{id: queueID(msg), from: cur.from, rcpts: slices.Clone(cur.rcpts), recv: cur.recv})
}

func (r *sessionRun) dataOp() {
	r.flush()
	if r.closed {
		return
	}
	r.log = append(r.log, "C: DATA")
	r.conn.Write([]byte("DATA\r\n"))
	code, msg := r.read("DATA")
	if code == 0 {
		return
	}
	cur := r.cur
	if code != 354 {
		if cur != nil && len(cur.rcpts) > 0 && !cur.bdat {
			r.fatalf("DATA in a transaction with recipients: %d %s", code, msg)
		}
		return
	}
	if cur == nil || len(cur.rcpts) == 0 || cur.bdat {
		r.fatalf("DATA accepted without recipients or during BDAT: %d %s", code, msg)
	}
	r.cur = nil
	cur.recv = cur.msg
	r.raw(cur.msg + ".\r\n")
	r.pending = []pendingReply{{what: "end of DATA", handle: func(code int, msg string) { r.final(cur, "DATA", code, msg) }}}
	r.flush()
}

// bdatOp sends one BDAT chunk and reports whether its outcome is
// unpredictable (so the caller must wait for the reply).
func (r *sessionRun) bdatOp(op fuzzOp) bool {
	cur := r.cur
	if cur == nil || len(cur.rcpts) == 0 {
		// No transaction: refused, and the chunk discarded.
		chunk := strings.Repeat("y", int(op.arg%16))
		cmd := fmt.Sprintf("BDAT %d", len(chunk))
		r.send(cmd, func(code int, msg string) { r.must(cmd+" without recipients", code, msg, 502) })
		r.raw(chunk)
		return false
	}
	rest := cur.msg[cur.pos:]
	chunk := rest[:min(len(rest), int(op.arg)*4)]
	if op.code == opBDATLast {
		chunk = rest
	}
	cur.pos += len(chunk)
	declared := len(chunk)
	if op.code == opBDATWrong {
		// Declare fewer bytes than are sent, short of the last line end,
		// so that the rest prefixes the next line (a NOOP sent with it):
		// one garbled command, replies stay in step.
		tail := len(chunk) - (strings.LastIndexByte(chunk, '\n') + 1)
		if k := min(int(op.arg%8)+1, tail); k > 0 && r.garbles < 2 {
			declared -= k
			r.garbles++
			cur.garbled = true
		}
	}
	cur.recv += chunk[:declared]
	last := op.code == opBDATLast
	cmd := fmt.Sprintf("BDAT %d", declared)
	if last {
		cmd += " LAST"
		r.cur = nil // whatever the reply, the transaction is over
	} else {
		cur.bdat = true
	}
	uncertain := cur.garbled && !last
	r.send(cmd, func(code int, msg string) {
		switch {
		case last:
			r.final(cur, cmd, code, msg)
		case code != 250 && !cur.garbled:
			r.fatalf("%s in a valid transaction: %d %s", cmd, code, msg)
		case code != 250:
			r.cur = nil // the message was refused early; go-smtp resets
		}
	})
	r.raw(chunk)
	if declared < len(chunk) {
		r.send("NOOP", func(code int, msg string) {
			if code == 250 {
				r.fatalf("the rest of a short-declared chunk was not taken as part of the next line")
			}
		})
	}
	return uncertain
}

// checkStored compares the spool with the 250 replies.
func (r *sessionRun) checkStored(q *spool.Spool) {
	n := q.Len()
	if n != len(r.acks) {
		r.fatalf("%d messages stored, %d acknowledged with 250", n, len(r.acks))
	}
	stored := map[string]*queue.Message{}
	bodies := map[string]string{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := q.Lease(ctx)
		cancel()
		if err != nil {
			r.fatalf("lease: %v", err)
		}
		rc, err := q.Body(context.Background(), m)
		if err != nil {
			r.fatalf("body: %v", err)
		}
		b, _ := io.ReadAll(bufio.NewReader(rc))
		rc.Close()
		stored[m.Envelope.ID] = m
		bodies[m.Envelope.ID] = string(b)
	}
	for _, a := range r.acks {
		m, ok := stored[a.id]
		if !ok {
			r.fatalf("250 queued as %s, but %s is not stored", a.id, a.id)
		}
		delete(stored, a.id)
		var rcpts []string
		for _, rc := range m.Envelope.Recipients {
			rcpts = append(rcpts, rc.Addr)
		}
		if m.Envelope.From != a.from || !slices.Equal(rcpts, a.rcpts) {
			r.fatalf("%s stored from <%s> to %q; the transaction was from <%s> to %q", a.id, m.Envelope.From, rcpts, a.from, a.rcpts)
		}
		body := bodies[a.id]
		prefix, ok := strings.CutSuffix(body, a.recv)
		if !ok || !strings.HasPrefix(prefix, "Received: ") {
			r.fatalf("%s: stored body is not the fix-ups followed by the bytes sent:\nstored %q\nsent %q", a.id, body, a.recv)
		}
	}
	if len(stored) > 0 {
		r.fatalf("%d messages stored without a 250", len(stored))
	}
}
