package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/edgerelay/edgerelay/auth"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "":
		if lambdaRuntime() {
			return lambdaMain(stderr) // lambda.go
		}
		return serveMain(stderr)
	case "queue":
		return queueCommand(args[1:], stdout, stderr) // queuecmd.go
	case "config":
		return configCommand(args[1:], stdout, stderr) // configcmd.go
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "edgerelay", versionString())
		return 0
	case "healthcheck":
		return healthcheck(stderr)
	case "hash-password":
		return hashPassword(stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: edgerelay [version|healthcheck|hash-password|config|queue]\nConfigured by RELAY_* environment variables; see README.md.")
		return 0
	default:
		fmt.Fprintf(stderr, "edgerelay: unknown command %q (want version, healthcheck, hash-password, config or queue)\n", cmd)
		return 2
	}
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	return v
}

func serveMain(stderr io.Writer) int {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintf(stderr, "edgerelay: configuration error:\n%s\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("edgerelay stopped", "err", err)
		return 1
	}
	return 0
}

// healthcheck asks the local HTTP listener for /healthz: a HEALTHCHECK for
// images without curl.
func healthcheck(stderr io.Writer) int {
	addr := os.Getenv("RELAY_HTTP_ADDR")
	if addr == "" {
		if _, set := os.LookupEnv("RELAY_HTTP_ADDR"); set {
			fmt.Fprintln(stderr, "healthcheck: RELAY_HTTP_ADDR is empty (HTTP disabled)")
			return 1
		}
		addr = configDefault("HTTPAddr")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: RELAY_HTTP_ADDR: %v\n", err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + net.JoinHostPort(host, port) + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s\n", resp.Status)
		return 1
	}
	return 0
}

// hashPassword reads one password line from stdin and prints its bcrypt
// hash for the users file.
func hashPassword(stdin io.Reader, stdout, stderr io.Writer) int {
	var pw string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		// At a terminal: prompt, and do not echo the password.
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "hash-password: %v\n", err)
			return 1
		}
		pw = string(b)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "hash-password: %v\n", err)
			return 1
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		fmt.Fprintln(stderr, "hash-password: empty password on stdin")
		return 1
	}
	h, err := auth.HashPassword([]byte(pw))
	if err != nil {
		fmt.Fprintf(stderr, "hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}
