// Command stbench measures a fresh local stcache cluster under HTTP load.
//
// It starts three stcached processes on random loopback ports with
// temporary data directories (node1 bootstraps, the others join it), waits
// until the leader is writable and all three are voters, preloads the
// keyspace, then runs each workload for a fixed duration with keep-alive
// HTTP clients, one goroutine per client, and prints one table: ops/s,
// latency percentiles and errors per workload, plus the nodes' peak RSS.
// Every node it started is stopped (SIGTERM, then SIGKILL) and its data
// removed when it finishes, fails or is interrupted.
//
// Usage:
//
//	go build -o stcached . && go build -o stbench ./cmd/stbench
//	./stbench -stcached ./stcached [-duration 10s] [-keys 10000] [-value-size 100] [-workloads set1,set64]
//
// or simply `make bench` (extra flags through BENCHFLAGS=...).
//
// With -target, the same load runs against a peer built elsewhere, so that
// throughput ratios come from one machine and one load generator (-stcached
// then names the peer's binary):
//
//	tutorial  the tutorial's original stcache: flags -node -http -raft
//	          -bootstrap -join, the same /set and /get, data in ./<node>
//	          (stbench runs each node in its temporary directory); it
//	          answers 200 to everything, so a set counts only if the body
//	          is "ok"
//	hraftd    otoolep/hraftd: flags -id -haddr -raddr -join and the data
//	          dir as argument; set is POST /key with {"k":"v"}, get is
//	          GET /key/k
//
// Neither peer has strong reads (strong workloads are skipped with a note)
// or a status endpoint: stbench starts node1 alone, waits until a set
// through it succeeds (their joining nodes ask node1 once and give up),
// starts the others, and counts the cluster ready when a set through the
// leader can be read back from every node. The batch column needs stcache's
// /status and shows "-" for them.
//
// Workloads are named <kind><clients>, e.g. set64:
//
//	set     /set?key=K&value=V                 to the leader
//	get     /get?key=K (stale, the default)    to the leader
//	strong  /get?key=K&consistency=strong      to the leader
//	mix     90% stale get, 10% set             to the leader
//
// Every request goes to the leader, stale gets included: a stale get on the
// leader is the same local map lookup as on a follower, and one target keeps
// the numbers comparable with other systems' "local get" figures and with
// our own strong gets, which only the leader serves. Keys are drawn
// uniformly from the keyspace; values are ASCII letters and digits, so no
// percent-encoding is needed.
//
// ops/s counts answers with status 200 over the workload's wall time; the
// latencies cover every request that got an answer; errors are non-200
// answers plus transport errors. Redirects are not followed: a 307 means the
// leader moved, and counts as an error (stbench also notes any leader change
// and moves on to the new leader). batch is the number of sets per Raft log
// entry (from the leader's last_log_index), the measure of group commit;
// leader, cluster and stbench are CPU microseconds per answered request,
// read from /proc, so the cost per write can be compared across changes.
//
// The default client is net/http with one shared Transport. On a small
// machine it costs about as much CPU per request as the server does, which
// caps read throughput; -client raw (one connection per client goroutine,
// requests written and responses parsed in place) costs a third of that.
// -client pkg goes through the project's Go client package
// (github.com/stcache/stcache/client: writes as POST bodies, its own
// redirect following), to measure what the package costs against raw.
// Compare numbers only between runs with the same client.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	stclient "github.com/stcache/stcache/client"
)

type config struct {
	stcached    string
	nodeFlags   string
	versusFlags string // -versus-node-flags: cluster b's nodes only
	duration    time.Duration
	keys        int
	valueSize   int
	workloads   []workload
	preloadCon  int
	keep        bool
	tmp         string
	raw         bool
	pkg         bool   // -client pkg: through the client package
	wrk         bool   // -client wrk: stale gets by wrk, plus the bare reference
	serveBare   string // hidden: be the bare reference server on this address
	bareLike    bool   // hidden: ... with stcached's server timeouts and Content-Type
	scale       bool
	target      string // targetStcache, targetTutorial or targetHraftd
	certs       string // -certs: run the nodes with TLS from this dir (make certs)
	tokenFile   string // -token-file: run the nodes with this token, and send it
	results     string // -results: each row's figures as JSON lines, for cmd/perfcheck
	versus      string // -versus: a second cluster from this binary, loaded in turn (versus.go)
	rounds      int    // -rounds: with -versus, how many times each workload runs on each
}

// api is how stbench reaches the nodes' HTTP API: plain HTTP as in the
// tutorial, or HTTPS with a token (-certs, -token-file). Set once in run,
// before any request.
var api = struct {
	scheme string       // "http://" or "https://"
	client *http.Client // for /status and probes
	auth   string       // the Authorization header, or ""
	tls    *tls.Config  // trusts the cluster's CA, or nil
}{scheme: "http://", client: http.DefaultClient}

// The systems stbench can start and load.
const (
	targetStcache  = "stcache"
	targetTutorial = "tutorial"
	targetHraftd   = "hraftd"
)

// workload is one row of the table.
type workload struct {
	name    string
	kind    string // set, get, strong or mix
	clients int
	stuck   int // /events subscribers per node that never read, during the run
}

const defaultWorkloads = "set1,set16,set64,get64,strong64,mix64"

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stbench: %v\n", err)
		os.Exit(2)
	}
	if cfg.serveBare != "" {
		fmt.Fprintln(os.Stderr, serveBare(cfg.serveBare, cfg.bareLike))
		os.Exit(1)
	}
	// SIGINT and SIGTERM cancel the run; the deferred cleanup in run then
	// stops the nodes. The nodes get their own process group, so a Ctrl-C
	// in the terminal reaches only us and we stop them in our own order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if cfg.versus != "" {
		err = runVersus(ctx, cfg, os.Stdout)
	} else {
		err = run(ctx, cfg, os.Stdout)
	}
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "stbench: interrupted; every node stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stbench: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("stbench", flag.ContinueOnError)
	fs.StringVar(&cfg.stcached, "stcached", "./stcached", "path of the binary to start: stcached, or the -target peer's")
	fs.StringVar(&cfg.target, "target", targetStcache, "what the binary is: stcache, tutorial (the tutorial's original stcache) or hraftd (otoolep/hraftd)")
	fs.StringVar(&cfg.nodeFlags, "node-flags", "", "extra flags for every node, space-separated (e.g. \"-log-level warn\")")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each workload runs")
	fs.IntVar(&cfg.keys, "keys", 10000, "keyspace size; every key is preloaded before the first workload")
	fs.IntVar(&cfg.valueSize, "value-size", 100, "value size in bytes")
	wl := fs.String("workloads", defaultWorkloads, "comma-separated workloads to run, in order: <set|get|strong|mix><clients>")
	fs.IntVar(&cfg.preloadCon, "preload-clients", 64, "concurrent clients for the preload")
	clientKind := fs.String("client", "nethttp", "HTTP client: nethttp (net/http, a shared Transport), pkg (the project's Go client package, github.com/stcache/stcache/client: Set, Get, GetStrong), raw (one connection per client, written and read by its own goroutine: far less load-generator CPU), or wrk (stale gets only, by the C load generator wrk, followed by the same load on a bare net/http handler, and on one with stcached's timeouts and Content-Type, for reference)")
	fs.StringVar(&cfg.tmp, "tmp", "", "directory for the nodes' temporary data dirs (default: the system's temp dir); it decides which disk fsyncs")
	fs.BoolVar(&cfg.scale, "scale", false, "after the workloads, report the leader's last snapshot (time, state.bin size) and restart a follower, timing until it serves again (stcache only; use with a large -keys)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (node data and logs) and print its path")
	fs.StringVar(&cfg.certs, "certs", "", "run the nodes with mutual TLS and HTTPS, from this directory made by make certs (127.0.0.1.pem, 127.0.0.1-key.pem, ca.pem); stcache only")
	fs.StringVar(&cfg.serveBare, "serve-bare", "", "(internal) serve the bare reference handler on this address")
	fs.BoolVar(&cfg.bareLike, "serve-bare-timeouts", false, "(internal) with -serve-bare: stcached's server timeouts and Content-Type")
	fs.StringVar(&cfg.tokenFile, "token-file", "", "run the nodes with this -token-file, and send its token; stcache only")
	fs.StringVar(&cfg.versus, "versus", "", "also start a second cluster from this stcached binary and run each workload on both in turn (a from -stcached, b from -versus; the other cluster idles meanwhile), -rounds times, alternating which goes first: the pairs cmd/perfcheck compares")
	fs.StringVar(&cfg.versusFlags, "versus-node-flags", "", "with -versus: extra flags for cluster b's nodes only, after -node-flags (e.g. -versus ./stcached -versus-node-flags \"-log-store wal\" compares the log stores with one binary)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "with -versus: how many rounds")
	fs.StringVar(&cfg.results, "results", "", "also write each workload's figures to this file, one JSON object per line, unrounded (cmd/perfcheck reads them): workload, side and round (-versus), ops_per_sec, requests, errors, leader_cpu_us, cluster_cpu_us, stbench_cpu_us (per answered request; 0 without /proc), leader_changed, others_cpu (the share of the machine's CPU that other processes used meanwhile)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `stbench: start a fresh local 3-node stcache cluster and measure it.

Workloads are <kind><clients>[~s<stuck>], e.g. set64; the default is %s.
  set     /set?key=K&value=V             sent to the leader
  get     /get?key=K (stale)             sent to the leader
  strong  /get?key=K&consistency=strong  sent to the leader
  mix     90%% stale get, 10%% set         sent to the leader
A suffix ~s<N> (e.g. set64~s10) keeps N /events subscribers open on every
node during the run that never read a byte (hung browsers): interleave
set64,set64~s10,set64,set64~s10 to see what they cost.
Stale gets go to the leader, not spread over the nodes: a stale get there is
the same local lookup as on a follower, and one target keeps the numbers
comparable with other systems' "local get" figures and with strong gets.

ops/s counts 200 answers; errors are non-200 answers (redirects are not
followed) plus transport errors. batch is sets per Raft log entry; leader,
cluster and stbench are CPU microseconds per answered request (from /proc).
With -client nethttp (the default) the load generator spends about as much
CPU per request as the leader; -client raw spends far less, so read-heavy
workloads show more of the server. Every node is stopped on exit or Ctrl-C.

-target tutorial or hraftd loads a peer instead (its binary given with
-stcached), for side-by-side ratios: the tutorial's original stcache (same
flags, /set and /get; a set counts only if its body is "ok") or
otoolep/hraftd (POST /key {"k":"v"}, GET /key/k). Neither has strong reads
(those rows are skipped) nor /status (no batch column).

Flags:
`, defaultWorkloads)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.scale && cfg.target != targetStcache {
		return nil, errors.New("-scale needs -target stcache (it reads /status)")
	}
	if (cfg.certs != "" || cfg.tokenFile != "") && cfg.target != targetStcache {
		return nil, errors.New("-certs and -token-file need -target stcache")
	}
	if cfg.duration <= 0 || cfg.keys <= 0 || cfg.valueSize <= 0 || cfg.preloadCon <= 0 {
		return nil, errors.New("-duration, -keys, -value-size and -preload-clients must be positive")
	}
	switch cfg.target {
	case targetStcache, targetTutorial, targetHraftd:
	default:
		return nil, fmt.Errorf("-target %q: want stcache, tutorial or hraftd", cfg.target)
	}
	switch *clientKind {
	case "nethttp":
	case "pkg":
		if cfg.target != targetStcache {
			return nil, errors.New("-client pkg speaks stcache's API only: drop -target")
		}
		cfg.pkg = true
	case "raw":
		if cfg.certs != "" {
			return nil, errors.New("-client raw does not speak TLS: use -client nethttp with -certs")
		}
		cfg.raw = true
	case "wrk":
		if _, err := exec.LookPath("wrk"); err != nil {
			return nil, errors.New("-client wrk needs wrk on PATH (Debian: apt-get install -y wrk)")
		}
		if cfg.certs != "" || cfg.tokenFile != "" {
			return nil, errors.New("-client wrk runs plain HTTP: drop -certs and -token-file")
		}
		cfg.wrk = true
	default:
		return nil, fmt.Errorf("-client %q: want nethttp, pkg, raw or wrk", *clientKind)
	}
	if cfg.versus != "" && (cfg.target != targetStcache || cfg.wrk || cfg.scale) {
		return nil, errors.New("-versus needs -target stcache, and works without -client wrk and -scale")
	}
	if cfg.versusFlags != "" && cfg.versus == "" {
		return nil, errors.New("-versus-node-flags needs -versus")
	}
	if cfg.rounds <= 0 {
		return nil, errors.New("-rounds must be positive")
	}
	for _, name := range strings.Split(*wl, ",") {
		w, err := parseWorkload(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		if cfg.wrk && (w.kind != "get" || w.stuck > 0) {
			return nil, fmt.Errorf("-client wrk runs stale get workloads only, not %s (use -client raw for the others)", w.name)
		}
		cfg.workloads = append(cfg.workloads, w)
	}
	return cfg, nil
}

func parseWorkload(name string) (workload, error) {
	base, stuckPart, hasStuck := strings.Cut(name, "~s")
	stuck := 0
	if hasStuck {
		n, err := strconv.Atoi(stuckPart)
		if err != nil || n < 0 || n > 64 {
			return workload{}, fmt.Errorf("-workloads: bad workload %q: ~s<N> wants 0..64 stuck subscribers", name)
		}
		stuck = n
	}
	for _, kind := range []string{"set", "get", "strong", "mix"} {
		if rest, ok := strings.CutPrefix(base, kind); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n <= 0 || n > 10000 {
				break
			}
			return workload{name: name, kind: kind, clients: n, stuck: stuck}, nil
		}
	}
	return workload{}, fmt.Errorf("-workloads: bad workload %q: want <set|get|strong|mix><clients>[~s<stuck>], e.g. set64 or set64~s10", name)
}

// secureAPI sets api from -certs and -token-file and returns the flags
// that put the nodes on TLS and the token.
func secureAPI(cfg *config) ([]string, error) {
	var flags []string
	if cfg.certs != "" {
		ca, err := os.ReadFile(filepath.Join(cfg.certs, "ca.pem"))
		if err != nil {
			return nil, fmt.Errorf("-certs: %w (make certs writes it)", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("-certs: %s/ca.pem holds no certificate", cfg.certs)
		}
		abs, err := filepath.Abs(cfg.certs)
		if err != nil {
			return nil, err
		}
		api.scheme = "https://"
		api.tls = &tls.Config{RootCAs: pool}
		api.client = &http.Client{Transport: &http.Transport{TLSClientConfig: api.tls}}
		flags = append(flags, "-tls-cert", filepath.Join(abs, "127.0.0.1.pem"), "-tls-key", filepath.Join(abs, "127.0.0.1-key.pem"),
			"-tls-ca", filepath.Join(abs, "ca.pem"))
	}
	if cfg.tokenFile != "" {
		b, err := os.ReadFile(cfg.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("-token-file: %w", err)
		}
		abs, err := filepath.Abs(cfg.tokenFile)
		if err != nil {
			return nil, err
		}
		api.auth = "Bearer " + strings.TrimSpace(string(b))
		flags = append(flags, "-token-file", abs)
	}
	return flags, nil
}

// wrkRow is a get workload wrk ran, for the bare reference that follows.
type wrkRow struct {
	w   workload
	rps float64
}

// getPrefix is the path of a stale get of key k<N> on target, without N.
func getPrefix(target string) string {
	if target == targetHraftd {
		return "/key/k"
	}
	return "/get?key=k"
}

// stuckSubscribers opens n /events streams on every node and never reads
// them: browsers that hung. They stay open until the returned func runs.
func stuckSubscribers(nodes []*node, n int) (func(), error) {
	var conns []net.Conn
	done := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, nd := range nodes {
		for range n {
			c, err := net.DialTimeout("tcp", nd.http, 5*time.Second)
			if err != nil {
				done()
				return nil, fmt.Errorf("stuck subscriber on %s: %w", nd.name, err)
			}
			conns = append(conns, c)
			if _, err := fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: %s\r\n\r\n", nd.http); err != nil {
				done()
				return nil, fmt.Errorf("stuck subscriber on %s: %w", nd.name, err)
			}
		}
	}
	return done, nil
}

func run(ctx context.Context, cfg *config, out io.Writer) (err error) {
	bin, err := exec.LookPath(cfg.stcached)
	if err != nil {
		return fmt.Errorf("-stcached: %w (build it with: go build -o stcached .)", err)
	}
	// Both absolute, because the nodes run in dir (the tutorial keeps its
	// data in ./<node>) and exec resolves a relative binary against that.
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	dir, err := benchDir(cfg.tmp)
	if err != nil {
		return err
	}
	c := &cluster{bin: bin, dir: dir, extra: strings.Fields(cfg.nodeFlags), target: cfg.target}
	results, closeResults, err := openResults(cfg.results)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeResults(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	extra, err := secureAPI(cfg)
	if err != nil {
		return err
	}
	c.extra = append(c.extra, extra...)
	defer func() {
		c.stop()
		if cfg.keep {
			fmt.Fprintf(out, "kept node data and logs in %s\n", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := c.start(ctx); err != nil {
		return err
	}
	leader, term, err := c.waitReady(ctx, 60*time.Second)
	if err != nil {
		return err
	}

	b, err := newBencher(cfg, leader.http, c.httpAddrs()...)
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Fprintf(out, "stbench: 3 %s nodes from %s, leader %s (http %s); %d CPUs, GOMAXPROCS %d\n",
		cfg.target, cfg.stcached, leader.name, leader.http, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(out, "keyspace %d keys, values %d bytes, %s per workload, %s HTTP/1.1 keep-alive clients\n",
		cfg.keys, cfg.valueSize, cfg.duration, clientName(cfg))

	t0 := time.Now()
	if err := b.preload(ctx); err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(out, "preload: %d sets with %d clients in %s (%.0f sets/s)\n\n",
		cfg.keys, cfg.preloadCon, el.Round(time.Millisecond), float64(cfg.keys)/el.Seconds())

	l := &lane{c: c, b: b, leader: leader, term: term}
	printHeader(out)
	var notes []string
	var wrkRows []wrkRow
	for _, w := range cfg.workloads {
		if w.kind == "strong" && cfg.target != targetStcache {
			fmt.Fprintf(out, "%-9s %7d   skipped: %s has no strong reads\n", w.name, w.clients, cfg.target)
			continue
		}
		if !cfg.wrk {
			if err := l.measure(ctx, cfg, w, w.name, out, results, &notes, rowResult{Workload: w.name}); err != nil {
				return err
			}
			continue
		}
		cpu0 := c.cpuTimes(l.leader)
		wr, err := runWrk(ctx, cfg, dir, l.leader.http, getPrefix(cfg.target), w.clients)
		if err != nil {
			return err
		}
		cpu := c.cpuTimes(l.leader).sub(cpu0)
		done := int64(wr.rps * cfg.duration.Seconds())
		fmt.Fprintf(out, row, w.name, strconv.Itoa(w.clients), strconv.FormatFloat(wr.rps, 'f', 0, 64),
			ms(wr.p50), ms(wr.p90), ms(wr.p99), "-", strconv.FormatInt(wr.errors, 10), "-",
			perOp(cpu.leader, done), perOp(cpu.cluster, done), "-")
		wrkRows = append(wrkRows, wrkRow{w, wr.rps})
		if err := writeResult(results, rowResult{Workload: w.name}, wr.rps, done, wr.errors, cpu); err != nil {
			return err
		}
	}
	leader = l.leader
	if len(wrkRows) > 0 {
		// The references, in the same sitting: the same wrk load against a
		// bare net/http handler that writes 100 bytes, then against one
		// with stcached's server settings.
		for _, like := range []bool{false, true} {
			if err := runBare(ctx, cfg, dir, out, row, wrkRows, like, &notes); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(out)
	if cfg.target == targetStcache {
		fmt.Fprintln(out, "batch: successful sets per Raft log entry (group commit)")
	} else {
		fmt.Fprintf(out, "batch: not known for %s, which has no /status\n", cfg.target)
		if cfg.target == targetTutorial {
			fmt.Fprintln(out, "a tutorial set counts as done only if its body is \"ok\" (it answers 200 to everything)")
		}
	}
	fmt.Fprintln(out, "leader, cluster (3 nodes), stbench: CPU time per answered request, in microseconds")
	for _, n := range notes {
		fmt.Fprintln(out, n)
	}
	for _, n := range c.nodes {
		role := "follower"
		if n == leader {
			role = "leader"
		}
		fmt.Fprintf(out, "%s (%s) peak RSS %s, RSS now %s\n", n.name, role, procMem(n.pid(), "VmHWM"), procMem(n.pid(), "VmRSS"))
	}
	if cfg.scale {
		return reportScale(ctx, c, leader, out)
	}
	return nil
}

// rowResult is one workload's row as -results writes it: one JSON object per
// line, unrounded, for programs that compare runs (cmd/perfcheck). The CPU
// figures are microseconds per answered request, 0 where /proc is missing.
type rowResult struct {
	Workload      string  `json:"workload"`
	Side          string  `json:"side,omitempty"`  // with -versus: a (-stcached) or b (-versus)
	Round         int     `json:"round,omitempty"` // with -versus: from 1
	OpsPerSec     float64 `json:"ops_per_sec"`
	Requests      int64   `json:"requests"` // answered requests: the CPU figures' divisor
	Errors        int64   `json:"errors"`
	LeaderCPU     float64 `json:"leader_cpu_us"`
	ClusterCPU    float64 `json:"cluster_cpu_us"`
	StbenchCPU    float64 `json:"stbench_cpu_us"`
	LeaderChanged bool    `json:"leader_changed"`
	Others        float64 `json:"others_cpu"` // share of the machine's CPU others used meanwhile (see measure)
}

// writeResult fills row's figures in and writes it as a line of -results.
func writeResult(w io.Writer, row rowResult, opsPerSec float64, requests, errs int64, cpu cpuSample) error {
	per := func(d time.Duration) float64 {
		if d <= 0 || requests <= 0 {
			return 0
		}
		return float64(d.Nanoseconds()) / 1e3 / float64(requests)
	}
	row.OpsPerSec, row.Requests, row.Errors = opsPerSec, requests, errs
	row.LeaderCPU, row.ClusterCPU, row.StbenchCPU = per(cpu.leader), per(cpu.cluster), per(cpu.self)
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("-results: %w", err)
	}
	return nil
}

// Fixed widths rather than tabwriter, so each row shows as it finishes.
const row = "%-9s %7s %9s %8s %8s %8s %8s %7s %6s %8s %8s %8s\n"

func printHeader(out io.Writer) {
	fmt.Fprintf(out, row, "workload", "clients", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
		"batch", "leader", "cluster", "stbench")
}

// lane is a cluster under load: its nodes, the load generator aimed at its
// leader, and that leader.
type lane struct {
	c      *cluster
	b      *bencher
	leader *node
	term   uint64
}

// measure runs w against the lane's leader, prints its row under label and
// writes it to results (base gives the row's name, side and round). A
// leader change is noted and followed, so that the next workload goes to
// the new leader.
//
// It also reports how much of the machine's CPU others used meanwhile:
// everything the machine ran (/proc/stat) less this cluster's nodes and
// stbench itself, as a share of wall time × CPUs. Others include an idle
// second cluster (-versus) and anything else on the machine; the load
// average cannot say this, since it counts the run itself.
func (l *lane) measure(ctx context.Context, cfg *config, w workload, label string, out, results io.Writer, notes *[]string, base rowResult) error {
	c := l.c
	busy0, wall0 := machineBusy(), time.Now()
	cpu0 := c.cpuTimes(l.leader)
	idx0, err := c.logIndex(ctx, l.leader)
	if err != nil {
		return err
	}
	closeStuck := func() {}
	if w.stuck > 0 {
		if cfg.target != targetStcache {
			return fmt.Errorf("%s: stuck subscribers need -target stcache (/events)", w.name)
		}
		if closeStuck, err = stuckSubscribers(c.nodes, w.stuck); err != nil {
			return err
		}
	}
	r, err := l.b.runWorkload(ctx, w)
	closeStuck()
	if err != nil {
		return err
	}
	cpu := c.cpuTimes(l.leader).sub(cpu0)
	if busy := machineBusy() - busy0; busy0 > 0 && cpu.cluster > 0 {
		base.Others = max(0, float64(busy-cpu.cluster-cpu.self)/(float64(time.Since(wall0))*float64(runtime.NumCPU())))
	}
	idx1, err := c.logIndex(ctx, l.leader)
	if err != nil {
		return err
	}
	batch := "-"
	if r.sets > 0 && idx1 > idx0 {
		batch = strconv.FormatFloat(float64(r.sets)/float64(idx1-idx0), 'f', 1, 64)
	}
	h := &r.hist
	done := r.ok + r.httpErrs
	fmt.Fprintf(out, row, label, strconv.Itoa(w.clients),
		strconv.FormatFloat(float64(r.ok)/r.elapsed.Seconds(), 'f', 0, 64),
		ms(h.quantile(0.50)), ms(h.quantile(0.90)), ms(h.quantile(0.99)), ms(h.max),
		strconv.FormatInt(r.httpErrs+r.netErrs, 10), batch,
		perOp(cpu.leader, done), perOp(cpu.cluster, done), perOp(cpu.self, done))
	if r.httpErrs+r.netErrs > 0 {
		*notes = append(*notes, fmt.Sprintf("%s: %d non-200 answers, %d transport errors; first: %s",
			label, r.httpErrs, r.netErrs, r.firstErr))
	}
	// A leader change invalidates the row (elections, redirects), and
	// the next workload must target the new leader.
	now, nowTerm, err := c.waitReady(ctx, 60*time.Second)
	if err != nil {
		return err
	}
	if now != l.leader || nowTerm != l.term {
		*notes = append(*notes, fmt.Sprintf("%s: leader changed during the run: %s in term %d, now %s in term %d",
			label, l.leader.name, l.term, now.name, nowTerm))
		l.leader, l.term = now, nowTerm
		l.b.base.Host = now.http
		base.LeaderChanged = true
	}
	return writeResult(results, base, float64(r.ok)/r.elapsed.Seconds(), done, r.httpErrs+r.netErrs, cpu)
}

// machineBusy is the CPU time the machine has run since boot, all processes
// and the hypervisor's other guests (steal) together: /proc/stat's user,
// nice, system and steal. Interrupt and softirq time are left out, since
// much of theirs is the run's own loopback traffic. 0 without /proc/stat.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 8} { // user nice system steal
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100, as in procCPU
}

// cpuSample is the CPU time (user+system) used so far by the leader, by all
// nodes together and by stbench itself.
type cpuSample struct{ leader, cluster, self time.Duration }

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.leader - b.leader, a.cluster - b.cluster, a.self - b.self}
}

// cpuTimes reads CPU times from /proc; on other systems they stay 0 and
// the columns show "-".
func (c *cluster) httpAddrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.http)
	}
	return a
}

func (c *cluster) cpuTimes(leader *node) cpuSample {
	var s cpuSample
	for _, n := range c.nodes {
		t := procCPU(n.pid())
		s.cluster += t
		if n == leader {
			s.leader = t
		}
	}
	s.self = procCPU(os.Getpid())
	return s
}

// procCPU returns utime+stime of a Linux process, all threads included.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name, which may hold spaces:
	// state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	// In clock ticks of USER_HZ, which is 100 on every Linux architecture
	// Go supports; 10 ms resolution is plenty over a multi-second run.
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func perOp(cpu time.Duration, ops int64) string {
	if cpu <= 0 || ops <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(cpu.Microseconds())/float64(ops), 'f', 1, 64)
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64)
}

// procMem reads a memory field (VmHWM: peak RSS) of a Linux process.
func procMem(pid int, field string) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "n/a"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return strings.TrimSpace(v)
			}
			return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
	}
	return "n/a"
}

// ---- the cluster ----

type cluster struct {
	bin    string
	dir    string
	extra  []string
	target string
	nodes  []*node
	probes int // probe writes so far, for peers' readiness (peerReady)
}

type node struct {
	name, http, raft, dir, log string
	cmd                        *exec.Cmd
	exited                     chan struct{}
	exitErr                    error
}

func (n *node) pid() int { return n.cmd.Process.Pid }

func (n *node) hasExited() bool {
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
// Another process may take it before stcached binds it; that shows as a
// startup error, and a rerun picks other ports.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start starts the three nodes. The peers' joining nodes ask node1 once and
// give up if it does not lead yet (the tutorial's exits, hraftd's stays
// outside the cluster), so with them node1 first has to take a write.
func (c *cluster) start(ctx context.Context) error {
	for i := 1; i <= 3; i++ {
		h, err := freeAddr()
		if err != nil {
			return err
		}
		r, err := freeAddr()
		if err != nil {
			return err
		}
		name := fmt.Sprintf("node%d", i)
		c.nodes = append(c.nodes, &node{name: name, http: h, raft: r,
			dir: filepath.Join(c.dir, name), log: filepath.Join(c.dir, name+".log")})
	}
	for i, n := range c.nodes {
		if err := c.startNode(n, i == 0); err != nil {
			return err
		}
		if i == 0 && c.target != targetStcache {
			if _, _, err := c.waitReady(ctx, 60*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

// startNode starts one node with its output in its log file; the first one
// bootstraps the cluster and the others join it.
func (c *cluster) startNode(n *node, first bool) error {
	join := c.nodes[0].http
	var args []string
	switch c.target {
	case targetStcache:
		args = []string{"-node", n.name, "-dir", n.dir, "-http", n.http, "-raft", n.raft}
		if first {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-join", join)
		}
	case targetTutorial: // its data dir is ./<node>: cmd.Dir below
		args = []string{"-node", n.name, "-http", n.http, "-raft", n.raft}
		if first {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-join", join)
		}
	case targetHraftd: // node1 bootstraps because it has no -join
		args = []string{"-id", n.name, "-haddr", n.http, "-raddr", n.raft}
		if !first {
			args = append(args, "-join", join)
		}
	}
	args = append(args, c.extra...)
	if c.target == targetHraftd {
		args = append(args, n.dir) // the argument after the flags
	}
	logf, err := os.Create(n.log)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	n.cmd = cmd
	n.exited = make(chan struct{})
	go func() {
		n.exitErr = cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	return nil
}

// nodeStatus is the part of stcache's /status stbench needs.
type nodeStatus struct {
	State             string `json:"state"`
	Term              uint64 `json:"term"`
	Leader            string `json:"leader"`
	Writable          bool   `json:"writable"`
	LastLogIndex      uint64 `json:"last_log_index"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	Keys              int    `json:"keys"`
	Bytes             int64  `json:"bytes"`
	Servers           []struct {
		Suffrage string `json:"suffrage"`
	} `json:"servers"`
}

// logIndex returns n's last Raft log index, for the batch column; 0 for the
// peers, which have no /status to tell it.
func (c *cluster) logIndex(ctx context.Context, n *node) (uint64, error) {
	if c.target != targetStcache {
		return 0, nil
	}
	st, err := getStatus(ctx, n)
	return st.LastLogIndex, err
}

// getStatus reads a stcache node's /status. The timeout is generous: a
// leader just out of a workload may be slow to answer.
func getStatus(ctx context.Context, n *node) (nodeStatus, error) {
	var st nodeStatus
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.scheme+n.http+"/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := api.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("%s /status: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s /status: %s", n.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("%s /status: %w", n.name, err)
	}
	return st, nil
}

// waitReady polls /status until one node leads with writes enabled, it
// counts three voters, and both others follow it. For the peers, which have
// no such status, it waits until peerReady succeeds for the nodes started
// so far, and the term is 0.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) (*node, uint64, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if err := c.checkAlive(); err != nil {
			return nil, 0, err
		}
		var leader *node
		var term uint64
		var err error
		if c.target == targetStcache {
			leader, term, err = c.ready(ctx)
		} else {
			leader, err = c.peerReady(ctx, client)
		}
		if err == nil {
			return leader, term, nil
		}
		last = err
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("cluster not ready after %s: %v%s", timeout, last, c.logTails())
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *cluster) ready(ctx context.Context) (*node, uint64, error) {
	var leader *node
	var term uint64
	sts := make([]nodeStatus, len(c.nodes))
	for i, n := range c.nodes {
		var err error
		if sts[i], err = getStatus(ctx, n); err != nil {
			return nil, 0, err
		}
		if sts[i].State == "Leader" && sts[i].Writable {
			leader, term = n, sts[i].Term
		}
	}
	if leader == nil {
		return nil, 0, errors.New("no writable leader yet")
	}
	for i, n := range c.nodes {
		voters := 0
		for _, s := range sts[i].Servers {
			if s.Suffrage == "Voter" {
				voters++
			}
		}
		if voters != 3 {
			return nil, 0, fmt.Errorf("%s sees %d voters", n.name, voters)
		}
		if sts[i].Leader != leader.raft {
			return nil, 0, fmt.Errorf("%s does not follow %s yet", n.name, leader.name)
		}
	}
	return leader, term, nil
}

// peerReady finds the peer node that takes a write: it sets a fresh probe
// value through each started node in turn until one confirms it (a
// follower refuses), then waits until every started node serves that value,
// which shows that all of them have joined and apply the leader's log.
func (c *cluster) peerReady(ctx context.Context, client *http.Client) (*node, error) {
	var started []*node
	for _, n := range c.nodes {
		if n.cmd != nil {
			started = append(started, n)
		}
	}
	c.probes++
	value := "probe" + strconv.Itoa(c.probes)
	var leader *node
	var last error
	for _, n := range started {
		if last = c.probeSet(ctx, client, n, value); last == nil {
			leader = n
			break
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("no node takes a write yet: %v", last)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, n := range started {
		for {
			got, err := c.probeGet(ctx, client, n)
			if err != nil {
				return nil, err
			}
			if got == value {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s does not serve the write made through %s yet", n.name, leader.name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return leader, nil
}

// probeKey is outside the benchmark's keyspace (k0, k1, ...).
const probeKey = "stbench-probe"

// probeSet writes probeKey through node n: to the tutorial with /set, whose
// answer is 200 "ok" (anything else in the body is a refusal), to hraftd
// with a POST of a JSON object, where 200 means done.
func (c *cluster) probeSet(ctx context.Context, client *http.Client, n *node, value string) error {
	var req *http.Request
	var err error
	if c.target == targetHraftd {
		body := fmt.Sprintf(`{%q:%q}`, probeKey, value)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+n.http+"/key", strings.NewReader(body))
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet,
			api.scheme+n.http+"/set?key="+probeKey+"&value="+url.QueryEscape(value), nil)
	}
	if err != nil {
		return err
	}
	code, body, err := fetch(client, req)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if code != http.StatusOK || (c.target == targetTutorial && body != tutorialOK) {
		return fmt.Errorf("%s: set: status %d, body %.60q", n.name, code, body)
	}
	return nil
}

// probeGet reads probeKey from node n: the tutorial answers the bare value
// and a newline, hraftd a JSON object {"key":"value"}.
func (c *cluster) probeGet(ctx context.Context, client *http.Client, n *node) (string, error) {
	u := api.scheme + n.http + "/get?key=" + probeKey
	if c.target == targetHraftd {
		u = "http://" + n.http + "/key/" + probeKey
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	code, body, err := fetch(client, req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.name, err)
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("%s: get: status %d, body %.60q", n.name, code, body)
	}
	if c.target == targetHraftd {
		var m map[string]string
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			return "", fmt.Errorf("%s: get: %w", n.name, err)
		}
		return m[probeKey], nil
	}
	return strings.TrimSuffix(body, "\n"), nil
}

// fetch does one request and returns the status and body.
func fetch(client *http.Client, req *http.Request) (int, string, error) {
	if api.auth != "" {
		req.Header.Set("Authorization", api.auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(b), nil
}

// checkAlive fails if any node has exited: the numbers would be meaningless.
func (c *cluster) checkAlive() error {
	for _, n := range c.nodes {
		if n.cmd != nil && n.hasExited() {
			return fmt.Errorf("%s exited: %v%s", n.name, n.exitErr, c.logTails())
		}
	}
	return nil
}

func (c *cluster) logTails() string {
	var b strings.Builder
	for _, n := range c.nodes {
		data, err := os.ReadFile(n.log)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-8):]
		fmt.Fprintf(&b, "\n--- %s log (last lines) ---\n%s", n.name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// stop sends SIGTERM to every node at once, then SIGKILL to those still
// running after a grace period: a benchmark's throwaway data needs no more.
func (c *cluster) stop() {
	const grace = 15 * time.Second
	var running []*node
	for _, n := range c.nodes {
		if n.cmd != nil && !n.hasExited() {
			_ = n.cmd.Process.Signal(syscall.SIGTERM) // it may exit meanwhile
			running = append(running, n)
		}
	}
	timeout := time.After(grace)
	for _, n := range running {
		select {
		case <-n.exited:
		case <-timeout:
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	}
}

// ---- the load ----

type bencher struct {
	cfg    *config
	tr     *http.Transport
	client *http.Client
	pkg    *stclient.Client // -client pkg
	dialer *net.Dialer
	base   url.URL
	value  string

	noHeader, jsonHeader http.Header // for requests without and with a JSON body
}

// newBencher makes the load's clients, aimed at the leader (the client
// package also gets the others, as members it may fall over to).
func newBencher(cfg *config, leaderHTTP string, others ...string) (*bencher, error) {
	maxClients := cfg.preloadCon
	for _, w := range cfg.workloads {
		maxClients = max(maxClients, w.clients)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil, // loopback only, whatever the environment says
		DialContext:           dialer.DialContext,
		MaxIdleConns:          maxClients * 2,
		MaxIdleConnsPerHost:   maxClients * 2,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second, // bounds a stalled request without a per-request context
		DisableCompression:    true,
		TLSClientConfig:       api.tls,
	}
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// The value's first 8 bytes carry a per-client counter (appendValue);
	// the rest is a fixed pattern.
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, cfg.valueSize)
	for i := range v {
		v[i] = alnum[i%len(alnum)]
	}
	b := &bencher{cfg: cfg, tr: tr, client: client, dialer: dialer,
		base: url.URL{Scheme: strings.TrimSuffix(api.scheme, "://"), Host: leaderHTTP}, value: string(v),
		noHeader: http.Header{}, jsonHeader: http.Header{"Content-Type": {"application/json"}}}
	if api.auth != "" {
		b.noHeader.Set("Authorization", api.auth)
		b.jsonHeader.Set("Authorization", api.auth)
	}
	if cfg.pkg {
		// The leader first: stale gets go to the first member, as every
		// other client's do here.
		members := []string{leaderHTTP}
		for _, o := range others {
			if o != leaderHTTP {
				members = append(members, o)
			}
		}
		opts := []stclient.Option{stclient.WithMaxIdleConnsPerHost(maxClients * 2)}
		if api.tls != nil {
			opts = append(opts, stclient.WithTLSConfig(api.tls))
		}
		if tok, ok := strings.CutPrefix(api.auth, "Bearer "); ok {
			opts = append(opts, stclient.WithToken(tok))
		}
		pc, err := stclient.New(members, opts...)
		if err != nil {
			return nil, err
		}
		b.pkg = pc
	}
	return b, nil
}

func (b *bencher) close() {
	b.tr.CloseIdleConnections()
	if b.pkg != nil {
		b.pkg.Close()
	}
}

// result is one workload's outcome, merged over its clients.
type result struct {
	hist              histogram
	ok                int64
	sets              int64 // successful sets among ok
	httpErrs, netErrs int64
	firstErr          string
	elapsed           time.Duration
}

func (r *result) merge(o *result) {
	r.hist.merge(&o.hist)
	r.ok += o.ok
	r.sets += o.sets
	r.httpErrs += o.httpErrs
	r.netErrs += o.netErrs
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}

// client is one goroutine's request state, reused for every operation so
// that the loop allocates little beyond what net/http itself does.
type client struct {
	b   *bencher
	ctx context.Context
	rng *rand.Rand
	seq uint32
	res result

	// The request being made, built by build.
	method string
	path   []byte
	q      []byte // query string, without '?'
	body   []byte // request body (hraftd's set), sent with Content-Length
	resp   []byte // the response body, up to the raw reader's buffer size

	req  *http.Request // -client nethttp
	u    url.URL
	rbuf bytes.Buffer

	conn net.Conn // -client raw
	br   *bufio.Reader
	wbuf []byte
}

// newClient makes a client whose requests are aborted when ctx ends (Ctrl-C).
func (b *bencher) newClient(ctx context.Context, seed uint64) *client {
	c := &client{b: b, ctx: ctx, rng: rand.New(rand.NewPCG(seed, 0x5eed)), u: b.base,
		path: make([]byte, 0, 32), q: make([]byte, 0, 64+len(b.value)), body: make([]byte, 0, 32+len(b.value))}
	c.req = (&http.Request{Method: http.MethodGet, URL: &c.u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: b.base.Host}).WithContext(ctx)
	return c
}

// build sets method, path, query and body for one operation (set, get or
// strong) on key, in the target's API:
//
//	stcache, tutorial  GET /set?key=K&value=V, GET /get?key=K[&consistency=strong]
//	hraftd             POST /key with {"K":"V"}, GET /key/K
func (c *client) build(kind string, key int) {
	c.path, c.q, c.body = c.path[:0], c.q[:0], c.body[:0]
	c.method = http.MethodGet
	if c.b.cfg.target == targetHraftd {
		c.path = append(c.path, "/key"...)
		if kind == "set" {
			c.method = http.MethodPost
			c.body = append(c.body, `{"k`...)
			c.body = strconv.AppendInt(c.body, int64(key), 10)
			c.body = append(c.body, `":"`...)
			c.body = c.appendValue(c.body)
			c.body = append(c.body, `"}`...)
		} else {
			c.path = append(c.path, "/k"...)
			c.path = strconv.AppendInt(c.path, int64(key), 10)
		}
		return
	}
	c.q = append(c.q, "key=k"...)
	c.q = strconv.AppendInt(c.q, int64(key), 10)
	switch kind {
	case "set":
		c.path = append(c.path, "/set"...)
		c.q = append(c.q, "&value="...)
		c.q = c.appendValue(c.q)
	case "strong":
		c.path = append(c.path, "/get"...)
		c.q = append(c.q, "&consistency=strong"...)
	default:
		c.path = append(c.path, "/get"...)
	}
}

// appendValue appends the value, its first 8 bytes replaced by a
// per-client counter in hex, so that writes do change the data. Values are
// letters and digits: no escaping in a query or in JSON.
func (c *client) appendValue(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, c.b.value...)
	c.seq++
	const hex = "0123456789abcdef"
	for i := 0; i < 8 && start+i < len(dst); i++ {
		dst[start+i] = hex[(c.seq>>(28-4*i))&0xf]
	}
	return dst
}

// tutorialOK is the tutorial's answer to a set it applied; it answers 200
// with another body ("write method not allowed", "internal error") to one
// it refused.
const tutorialOK = "ok\n"

// do sends one request for key and records its outcome.
func (c *client) do(kind string, key int) {
	t0 := time.Now()
	var code int
	var err error
	switch {
	case c.b.pkg != nil:
		code, err = c.sendPkg(kind, key)
	case c.b.cfg.raw:
		c.build(kind, key)
		code, err = c.sendRaw()
	default:
		c.build(kind, key)
		code, err = c.send()
	}
	if err != nil {
		if c.ctx.Err() != nil {
			return // interrupted: not the server's fault
		}
		c.res.netErrs++
		if c.res.firstErr == "" {
			c.res.firstErr = err.Error()
		}
		return
	}
	c.res.hist.record(time.Since(t0))
	if code != http.StatusOK || (kind == "set" && c.b.cfg.target == targetTutorial && string(c.resp) != tutorialOK) {
		c.res.httpErrs++
		if c.res.firstErr == "" {
			c.res.firstErr = fmt.Sprintf("%s %s?%.40s %.40s: status %d, body %.60q", c.method, c.path, c.q, c.body, code, c.resp)
		}
		return
	}
	c.res.ok++
	if kind == "set" {
		c.res.sets++
	}
}

// sendPkg is one operation through the client package. An answer the
// package turned into an error counts by its status code; a call that got
// none (unreachable, no leader until Ctrl-C) is a transport error.
func (c *client) sendPkg(kind string, key int) (int, error) {
	c.method, c.path = "", append(c.path[:0], kind...)
	c.q = strconv.AppendInt(append(c.q[:0], "key=k"...), int64(key), 10)
	k := string(c.q[len("key="):])
	var err error
	var v string
	switch kind {
	case "set":
		_, err = c.b.pkg.Set(c.ctx, k, string(c.appendValue(c.body[:0])))
	case "strong":
		v, err = c.b.pkg.GetStrong(c.ctx, k)
	default:
		v, err = c.b.pkg.Get(c.ctx, k)
	}
	c.resp = append(c.resp[:0], v...)
	var e *stclient.Error
	switch {
	case err == nil:
		return http.StatusOK, nil
	case errors.As(err, &e) && e.Status != 0:
		c.resp = append(c.resp[:0], e.Body...)
		return e.Status, nil
	}
	return 0, err
}

// send is one request through net/http, reusing the client's Request:
// allowed once the previous response's body is closed (net/http docs).
func (c *client) send() (int, error) {
	c.req.Method = c.method
	c.u.Path = string(c.path)
	c.u.RawQuery = string(c.q)
	c.req.Header = c.b.noHeader
	c.req.Body, c.req.ContentLength = nil, 0
	if len(c.body) > 0 {
		// A new reader each time; c.body itself is rewritten only after
		// the answer, and the server answers only once it has read it all.
		c.req.Header = c.b.jsonHeader
		c.req.Body, c.req.ContentLength = io.NopCloser(bytes.NewReader(c.body)), int64(len(c.body))
	}
	resp, err := c.b.client.Do(c.req)
	if err != nil {
		return 0, err
	}
	c.rbuf.Reset()
	_, err = c.rbuf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	c.resp = c.rbuf.Bytes()
	return resp.StatusCode, nil
}

// sendRaw is one request over the client's own connection, written and
// read by this goroutine (-client raw). net/http's client hands every
// request to two goroutines per connection (its read and write loops); on a
// 2-core machine that costs the load generator about as much CPU per
// request as the server spends, which caps what a local run can show.
func (c *client) sendRaw() (int, error) {
	if c.conn == nil {
		conn, err := c.b.dialer.DialContext(c.ctx, "tcp", c.b.base.Host)
		if err != nil {
			return 0, err
		}
		c.conn = conn
		if c.br == nil {
			c.br = bufio.NewReaderSize(conn, 4096)
		} else {
			c.br.Reset(conn)
		}
	}
	w := append(c.wbuf[:0], c.method...)
	w = append(w, ' ')
	w = append(w, c.path...)
	if len(c.q) > 0 {
		w = append(w, '?')
		w = append(w, c.q...)
	}
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, c.b.base.Host...)
	if len(c.body) > 0 {
		w = append(w, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		w = strconv.AppendInt(w, int64(len(c.body)), 10)
	}
	w = append(w, "\r\n\r\n"...)
	w = append(w, c.body...)
	c.wbuf = w
	code, keep, err := c.rawRoundTrip(w)
	if err != nil || !keep {
		c.conn.Close()
		c.conn = nil
	}
	return code, err
}

var errRawResponse = errors.New("-client raw: unexpected response framing (want HTTP/1.1 with Content-Length)")

// rawRoundTrip writes req and reads the response; its body is kept in
// c.resp if it fits the reader's buffer (all the short answers whose text
// matters do), else c.resp is empty.
func (c *client) rawRoundTrip(req []byte) (code int, keep bool, err error) {
	c.resp = c.resp[:0]
	// The same bound as the net/http client's ResponseHeaderTimeout.
	if err := c.conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, false, err
	}
	if _, err := c.conn.Write(req); err != nil {
		return 0, false, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " {
		return 0, false, errRawResponse
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, false, errRawResponse
		}
		code = code*10 + int(d-'0')
	}
	length, keep := -1, true
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, errRawResponse
		}
		val = bytes.TrimSpace(val)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if len(val) == 0 || len(val) > 9 {
				return 0, false, errRawResponse
			}
			length = 0
			for _, d := range val {
				if d < '0' || d > '9' {
					return 0, false, errRawResponse
				}
				length = length*10 + int(d-'0')
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, errRawResponse
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(val, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		return 0, false, errRawResponse
	}
	if length <= c.br.Size() {
		b, err := c.br.Peek(length)
		if err != nil {
			return 0, false, err
		}
		c.resp = append(c.resp, b...)
	}
	if _, err := c.br.Discard(length); err != nil {
		return 0, false, err
	}
	return code, keep, nil
}

// close drops the client's raw connection, if any.
func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// preload sets every key once, so gets hit and sets overwrite.
func (b *bencher) preload(ctx context.Context) error {
	var wg sync.WaitGroup
	clients := make([]*client, min(b.cfg.preloadCon, b.cfg.keys))
	for i := range clients {
		c := b.newClient(ctx, uint64(i))
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; k < b.cfg.keys && ctx.Err() == nil; k += len(clients) {
				c.do("set", k)
			}
		}()
	}
	wg.Wait()
	for _, c := range clients {
		c.close()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var total result
	for _, c := range clients {
		total.merge(&c.res)
	}
	if n := total.httpErrs + total.netErrs; n > 0 {
		return fmt.Errorf("preload: %d of %d sets failed; first: %s", n, b.cfg.keys, total.firstErr)
	}
	return nil
}

func (b *bencher) runWorkload(ctx context.Context, w workload) (*result, error) {
	return b.runWorkloadFor(ctx, w, b.cfg.duration)
}

// runWorkloadFor runs w for d.
func (b *bencher) runWorkloadFor(ctx context.Context, w workload, d time.Duration) (*result, error) {
	clients := make([]*client, w.clients)
	for i := range clients {
		clients[i] = b.newClient(ctx, uint64(i)+1000)
	}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := b.cfg.keys
			for ctx.Err() == nil && time.Now().Before(deadline) {
				k := c.rng.IntN(keys)
				kind := w.kind
				if kind == "mix" {
					kind = "get"
					if c.rng.IntN(10) == 0 {
						kind = "set"
					}
				}
				c.do(kind, k)
			}
		}()
	}
	wg.Wait()
	total := &result{elapsed: time.Since(start)}
	for _, c := range clients {
		c.close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, c := range clients {
		total.merge(&c.res)
	}
	return total, nil
}

// ---- latency histogram ----

// histogram is a log-linear latency histogram in nanoseconds: exact below
// 128 ns, then 128 buckets per power of two (under 1% relative error).
// Fixed size, so recording never allocates and merging is a loop.
type histogram struct {
	counts [64 * histSub]uint64
	n      uint64
	max    time.Duration
}

const (
	histBits = 7
	histSub  = 1 << histBits
)

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histBits - 1 // v>>shift is in [histSub, 2*histSub)
	return (shift+1)*histSub + int(v>>shift) - histSub
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := i/histSub - 1
	lo := uint64(i%histSub+histSub) << shift
	return lo + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(time.Duration(histValue(i)), h.max)
		}
	}
	return h.max
}

// runBare runs the wrk rows' loads against a bare reference server (with
// stcached's timeouts and Content-Type when like) and notes each row's
// ratio to it.
func runBare(ctx context.Context, cfg *config, dir string, out io.Writer, row string, rows []wrkRow, like bool, notes *[]string) error {
	addr, barePID, stopBare, err := startBare(ctx, like)
	if err != nil {
		return err
	}
	defer stopBare()
	name, what := "bare", "the bare net/http handler"
	if like {
		name, what = "bare+t", "a bare handler with stcached's timeouts and Content-Type"
	}
	for _, wr := range rows {
		cpu0 := procCPU(barePID)
		ref, err := runWrk(ctx, cfg, dir, addr, "/get?key=k", wr.w.clients)
		if err != nil {
			return err
		}
		cpu := perOp(procCPU(barePID)-cpu0, int64(ref.rps*cfg.duration.Seconds()))
		fmt.Fprintf(out, row, name+strconv.Itoa(wr.w.clients), strconv.Itoa(wr.w.clients), strconv.FormatFloat(ref.rps, 'f', 0, 64),
			ms(ref.p50), ms(ref.p90), ms(ref.p99), "-", strconv.FormatInt(ref.errors, 10), "-", cpu, cpu, "-")
		*notes = append(*notes, fmt.Sprintf("%s: %.2f× %s (%s)", wr.w.name, wr.rps/ref.rps, what, cfg.target))
	}
	return nil
}

// benchDir makes a run's temporary directory under -tmp, absolute: the
// nodes run in directories of their own.
func benchDir(tmp string) (string, error) {
	if tmp != "" {
		var err error
		if tmp, err = filepath.Abs(tmp); err != nil {
			return "", err
		}
	}
	return os.MkdirTemp(tmp, "stbench-")
}

// openResults opens -results for writing (or discards the rows when it is
// ""); its close reports a failed close, which would lose rows.
func openResults(path string) (io.Writer, func() error, error) {
	if path == "" {
		return io.Discard, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("-results: %w", err)
	}
	return f, func() error {
		if err := f.Close(); err != nil {
			return fmt.Errorf("-results: %w", err)
		}
		return nil
	}, nil
}
