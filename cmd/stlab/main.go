// Command stlab is the lab supervisor: `make cluster` runs it, and it starts
// the cluster's nodes as ordinary stcached processes that it owns, so that
// the live page can crash (SIGKILL), restart (same flags and data), freeze
// (SIGSTOP) and thaw (SIGCONT) them. Only it can: a page cannot send signals,
// and a node cannot restart itself.
//
// It follows make cluster's conventions: node i is node<i>, with its data in
// <dir>/node<i>, its log in <dir>/node<i>.log (each start opens with the
// "=== make cluster: starting node<i>" line that make cluster's wait loop
// reads) and its PID in <dir>/node<i>.pid; its own PID is in <dir>/stlab.pid.
// So `make stop` (and a terminal's kill -9) still work on the nodes, and
// SIGHUP, which make cluster sends when stlab already runs, starts every node
// that is not running. It never stops the nodes when it exits.
//
// It serves, on a loopback address a browser may open (127.0.0.1:6080), its
// API under /lab-api/ and, on every other path, the first node that answers
// (the live page, /status, /events), so the page and the API share an origin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// config is what the flags say.
type config struct {
	bin, dir, addr string
	n              int
	httpBase       int
	raftBase       int
	nodeFlags      []string
	logLevel       string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("stlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.bin, "bin", "./stcached", "the stcached binary")
	fs.StringVar(&c.dir, "dir", "cluster", "make cluster's directory: node data, logs and PID files")
	fs.IntVar(&c.n, "n", 3, "how many nodes: node1 bootstraps, the others join it")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:6080", "where the page and the API are served (loopback only)")
	fs.IntVar(&c.httpBase, "http-base", 6000, "node i's HTTP port is http-base+i-1 (on 127.0.0.1)")
	fs.IntVar(&c.raftBase, "raft-base", 7000, "node i's Raft port is raft-base+i-1 (on 127.0.0.1)")
	nodeFlags := fs.String("node-flags", "-lab -trailing-logs 128", "extra flags for every node (besides -allow-origin for this page, always given); the lessons count on -trailing-logs 128")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: trace, debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `stlab: the lab supervisor. It starts the cluster's nodes, owns them, and lets
the live page crash, restart, freeze and thaw them (make cluster runs it).

  stlab -bin ./stcached -dir cluster -n 3 -addr 127.0.0.1:6080

API: GET /lab-api/nodes, POST /lab-api/nodes/<name>/crash|restart|freeze|thaw,
POST /lab-api/heal-all; every other path is served by the first node that answers.
SIGHUP: start every node that is not running. SIGTERM, SIGINT: exit (the nodes go on).

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if c.n < 1 {
		return nil, fmt.Errorf("-n %d: want at least one node", c.n)
	}
	for _, b := range []struct {
		name string
		base int
	}{{"-http-base", c.httpBase}, {"-raft-base", c.raftBase}} {
		if b.base < 1 || b.base+c.n-1 > 65535 {
			return nil, fmt.Errorf("%s %d: ports %d to %d are not all valid", b.name, b.base, b.base, b.base+c.n-1)
		}
	}
	if hclog.LevelFromString(c.logLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("-log-level %q: want trace, debug, info, warn or error", c.logLevel)
	}
	if err := checkAddr(c.addr); err != nil {
		return nil, fmt.Errorf("-addr %w", err)
	}
	c.nodeFlags = strings.Fields(*nodeFlags)
	return c, nil
}

// checkAddr accepts a loopback address whose port a browser will open: the
// supervisor sends signals on request, so nothing beyond this machine may
// reach it, and its one client is a browser.
func checkAddr(addr string) error {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port", addr)
	}
	if ip := net.ParseIP(host); !strings.EqualFold(host, "localhost") && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q: the lab listens on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%q: want a port from 1 to 65535", addr)
	}
	if badPorts[port] {
		return fmt.Errorf("%q: browsers refuse port %d (the Fetch standard's bad ports), so the page could not be opened there", addr, port)
	}
	return nil
}

// badPorts is the Fetch standard's list of ports that browsers refuse to
// connect to (https://fetch.spec.whatwg.org/#bad-port): 6000, make cluster's
// node1, is one; 6080 is not.
var badPorts = func() map[int]bool {
	m := map[int]bool{}
	for _, p := range []int{0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79,
		87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
		179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601,
		636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566,
		6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080} {
		m[p] = true
	}
	return m
}()

// run is main without os.Exit: 2 for a bad flag, 1 for anything else.
func run(args []string, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stlab: %v\n", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{
		Name:   "stlab",
		Level:  hclog.LevelFromString(c.logLevel),
		Output: stderr,
	})
	if err := serve(c, log); err != nil {
		fmt.Fprintf(stderr, "stlab: %v\n", err)
		return 1
	}
	return 0
}

// serve runs the supervisor until SIGTERM or SIGINT.
func serve(c *config, log hclog.Logger) error {
	// A SIGINT that was ignored when we started (make cluster starts us in
	// the background, where sh ignores it) stays ignored: the Ctrl-C that
	// interrupts make's wait for the nodes must not end the lab.
	stopSignals := []os.Signal{syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGINT) {
		stopSignals = append(stopSignals, syscall.SIGINT)
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	// Notify re-enables a SIGHUP that nohup ignored: make cluster needs it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", c.dir, err)
	}
	pidFile := filepath.Join(c.dir, "stlab.pid")
	if p := readPID(pidFile); p != os.Getpid() && alive(p) {
		return fmt.Errorf("another stlab runs on %s (pid %d in %s)", c.dir, p, pidFile)
	}
	// Listen before starting nodes, so a busy port fails before anything runs.
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		ln.Close()
		return fmt.Errorf("write %s: %w", pidFile, err)
	}
	defer func() {
		if readPID(pidFile) == os.Getpid() {
			_ = os.Remove(pidFile)
		}
	}()

	l := newLab(c, log)
	l.startMissing("")
	srv := &http.Server{
		Handler:           newHandler(l),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving the lab", "page", "http://"+c.addr+"/", "nodes", c.n, "dir", c.dir)
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: starting every node that is not running")
			l.startMissing(" (SIGHUP)")
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			log.Info("stopping; the nodes keep running (make stop stops them)")
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			// Event streams relayed to pages never end by themselves: close them.
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
			return nil
		}
	}
}

// readPID is the PID in a PID file, or 0.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return p
}

// alive reports whether a process with this PID exists (kill -0).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
