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
// Compare numbers only between runs with the same client.
package main

import (
	"bufio"
	"bytes"
	"context"
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
)

type config struct {
	stcached   string
	nodeFlags  string
	duration   time.Duration
	keys       int
	valueSize  int
	workloads  []workload
	preloadCon int
	keep       bool
	tmp        string
	raw        bool
}

// workload is one row of the table.
type workload struct {
	name    string
	kind    string // set, get, strong or mix
	clients int
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
	// SIGINT and SIGTERM cancel the run; the deferred cleanup in run then
	// stops the nodes. The nodes get their own process group, so a Ctrl-C
	// in the terminal reaches only us and we stop them in our own order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout)
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
	fs.StringVar(&cfg.stcached, "stcached", "./stcached", "path of the stcached binary to start")
	fs.StringVar(&cfg.nodeFlags, "node-flags", "", "extra flags for every stcached, space-separated (e.g. \"-log-level warn\")")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long each workload runs")
	fs.IntVar(&cfg.keys, "keys", 10000, "keyspace size; every key is preloaded before the first workload")
	fs.IntVar(&cfg.valueSize, "value-size", 100, "value size in bytes")
	wl := fs.String("workloads", defaultWorkloads, "comma-separated workloads to run, in order: <set|get|strong|mix><clients>")
	fs.IntVar(&cfg.preloadCon, "preload-clients", 64, "concurrent clients for the preload")
	clientKind := fs.String("client", "nethttp", "HTTP client: nethttp (net/http, a shared Transport) or raw (one connection per client, written and read by its own goroutine: far less load-generator CPU)")
	fs.StringVar(&cfg.tmp, "tmp", "", "directory for the nodes' temporary data dirs (default: the system's temp dir); it decides which disk fsyncs")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (node data and logs) and print its path")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `stbench: start a fresh local 3-node stcache cluster and measure it.

Workloads are <kind><clients>, e.g. set64; the default is %s.
  set     /set?key=K&value=V             sent to the leader
  get     /get?key=K (stale)             sent to the leader
  strong  /get?key=K&consistency=strong  sent to the leader
  mix     90%% stale get, 10%% set         sent to the leader
Stale gets go to the leader, not spread over the nodes: a stale get there is
the same local lookup as on a follower, and one target keeps the numbers
comparable with other systems' "local get" figures and with strong gets.

ops/s counts 200 answers; errors are non-200 answers (redirects are not
followed) plus transport errors. batch is sets per Raft log entry; leader,
cluster and stbench are CPU microseconds per answered request (from /proc).
With -client nethttp (the default) the load generator spends about as much
CPU per request as the leader; -client raw spends far less, so read-heavy
workloads show more of the server. Every node is stopped on exit or Ctrl-C.

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
	if cfg.duration <= 0 || cfg.keys <= 0 || cfg.valueSize <= 0 || cfg.preloadCon <= 0 {
		return nil, errors.New("-duration, -keys, -value-size and -preload-clients must be positive")
	}
	switch *clientKind {
	case "nethttp":
	case "raw":
		cfg.raw = true
	default:
		return nil, fmt.Errorf("-client %q: want nethttp or raw", *clientKind)
	}
	for _, name := range strings.Split(*wl, ",") {
		w, err := parseWorkload(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		cfg.workloads = append(cfg.workloads, w)
	}
	return cfg, nil
}

func parseWorkload(name string) (workload, error) {
	for _, kind := range []string{"set", "get", "strong", "mix"} {
		if rest, ok := strings.CutPrefix(name, kind); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n <= 0 || n > 10000 {
				break
			}
			return workload{name: name, kind: kind, clients: n}, nil
		}
	}
	return workload{}, fmt.Errorf("-workloads: bad workload %q: want <set|get|strong|mix><clients>, e.g. set64", name)
}

func run(ctx context.Context, cfg *config, out io.Writer) (err error) {
	bin, err := exec.LookPath(cfg.stcached)
	if err != nil {
		return fmt.Errorf("-stcached: %w (build it with: go build -o stcached .)", err)
	}
	dir, err := os.MkdirTemp(cfg.tmp, "stbench-")
	if err != nil {
		return err
	}
	c := &cluster{bin: bin, dir: dir, extra: strings.Fields(cfg.nodeFlags)}
	defer func() {
		c.stop()
		if cfg.keep {
			fmt.Fprintf(out, "kept node data and logs in %s\n", dir)
		} else if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := c.start(); err != nil {
		return err
	}
	leader, term, err := c.waitReady(ctx, 60*time.Second)
	if err != nil {
		return err
	}

	b := newBencher(cfg, leader.http)
	defer b.tr.CloseIdleConnections()
	fmt.Fprintf(out, "stbench: 3 nodes from %s, leader %s (http %s); %d CPUs, GOMAXPROCS %d\n",
		cfg.stcached, leader.name, leader.http, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	clientKind := "net/http"
	if cfg.raw {
		clientKind = "raw"
	}
	fmt.Fprintf(out, "keyspace %d keys, values %d bytes, %s per workload, %s HTTP/1.1 keep-alive clients\n",
		cfg.keys, cfg.valueSize, cfg.duration, clientKind)

	t0 := time.Now()
	if err := b.preload(ctx); err != nil {
		return err
	}
	el := time.Since(t0)
	fmt.Fprintf(out, "preload: %d sets with %d clients in %s (%.0f sets/s)\n\n",
		cfg.keys, cfg.preloadCon, el.Round(time.Millisecond), float64(cfg.keys)/el.Seconds())

	// Fixed widths rather than tabwriter, so each row shows as it finishes.
	const row = "%-9s %7s %9s %8s %8s %8s %8s %7s %6s %8s %8s %8s\n"
	fmt.Fprintf(out, row, "workload", "clients", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors",
		"batch", "leader", "cluster", "stbench")
	var notes []string
	for _, w := range cfg.workloads {
		cpu0 := c.cpuTimes(leader)
		idx0, err := lastLogIndex(ctx, leader)
		if err != nil {
			return err
		}
		r, err := b.runWorkload(ctx, w)
		if err != nil {
			return err
		}
		cpu := c.cpuTimes(leader).sub(cpu0)
		idx1, err := lastLogIndex(ctx, leader)
		if err != nil {
			return err
		}
		batch := "-"
		if r.sets > 0 && idx1 > idx0 {
			batch = strconv.FormatFloat(float64(r.sets)/float64(idx1-idx0), 'f', 1, 64)
		}
		h := &r.hist
		done := r.ok + r.httpErrs
		fmt.Fprintf(out, row, w.name, strconv.Itoa(w.clients),
			strconv.FormatFloat(float64(r.ok)/r.elapsed.Seconds(), 'f', 0, 64),
			ms(h.quantile(0.50)), ms(h.quantile(0.90)), ms(h.quantile(0.99)), ms(h.max),
			strconv.FormatInt(r.httpErrs+r.netErrs, 10), batch,
			perOp(cpu.leader, done), perOp(cpu.cluster, done), perOp(cpu.self, done))
		if r.httpErrs+r.netErrs > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d non-200 answers, %d transport errors; first: %s",
				w.name, r.httpErrs, r.netErrs, r.firstErr))
		}
		// A leader change invalidates the row (elections, redirects), and
		// the next workload must target the new leader.
		now, nowTerm, err := c.waitReady(ctx, 60*time.Second)
		if err != nil {
			return err
		}
		if now != leader || nowTerm != term {
			notes = append(notes, fmt.Sprintf("%s: leader changed during the run: %s in term %d, now %s in term %d",
				w.name, leader.name, term, now.name, nowTerm))
			leader, term = now, nowTerm
			b.base.Host = leader.http
		}
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "batch: successful sets per Raft log entry (group commit)")
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
	return nil
}

// cpuSample is the CPU time (user+system) used so far by the leader, by all
// nodes together and by stbench itself.
type cpuSample struct{ leader, cluster, self time.Duration }

func (a cpuSample) sub(b cpuSample) cpuSample {
	return cpuSample{a.leader - b.leader, a.cluster - b.cluster, a.self - b.self}
}

// cpuTimes reads CPU times from /proc; on other systems they stay 0 and
// the columns show "-".
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
	bin   string
	dir   string
	extra []string
	nodes []*node
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

func (c *cluster) start() error {
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
		args := []string{"-node", n.name, "-dir", n.dir, "-http", n.http, "-raft", n.raft}
		if i == 0 {
			args = append(args, "-bootstrap")
		} else {
			args = append(args, "-join", c.nodes[0].http)
		}
		args = append(args, c.extra...)
		logf, err := os.Create(n.log)
		if err != nil {
			return err
		}
		cmd := exec.Command(c.bin, args...)
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
	}
	return nil
}

// nodeStatus is the part of /status stbench needs.
type nodeStatus struct {
	State    string `json:"state"`
	Term     uint64 `json:"term"`
	Leader   string `json:"leader"`
	Writable bool   `json:"writable"`
	Servers  []struct {
		Suffrage string `json:"suffrage"`
	} `json:"servers"`
}

// waitReady polls /status until one node leads with writes enabled, it
// counts three voters, and both others follow it.
func (c *cluster) waitReady(ctx context.Context, timeout time.Duration) (*node, uint64, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if err := c.checkAlive(); err != nil {
			return nil, 0, err
		}
		leader, term, err := c.ready(ctx, client)
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

func (c *cluster) ready(ctx context.Context, client *http.Client) (*node, uint64, error) {
	var leader *node
	var term uint64
	sts := make([]nodeStatus, len(c.nodes))
	for i, n := range c.nodes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.http+"/status", nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", n.name, err)
		}
		err = json.NewDecoder(resp.Body).Decode(&sts[i])
		resp.Body.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("%s /status: %w", n.name, err)
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

// lastLogIndex reads a node's last Raft log index from /status.
func lastLogIndex(ctx context.Context, n *node) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.http+"/status", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s /status: %w", n.name, err)
	}
	defer resp.Body.Close()
	var st struct {
		LastLogIndex uint64 `json:"last_log_index"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("%s /status: %w", n.name, err)
	}
	return st.LastLogIndex, nil
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
	dialer *net.Dialer
	base   url.URL
	value  string
}

func newBencher(cfg *config, leaderHTTP string) *bencher {
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
	}
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// The value's first 8 bytes carry a per-client counter, so writes do
	// change the data; the rest is a fixed pattern.
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	v := make([]byte, cfg.valueSize)
	for i := range v {
		v[i] = alnum[i%len(alnum)]
	}
	return &bencher{cfg: cfg, tr: tr, client: client, dialer: dialer,
		base: url.URL{Scheme: "http", Host: leaderHTTP}, value: string(v)}
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
// that the loop allocates nothing beyond what net/http itself does (and the
// query string).
type client struct {
	b   *bencher
	ctx context.Context
	rng *rand.Rand
	req *http.Request // -client nethttp
	u   url.URL
	q   []byte
	seq uint32
	res result

	conn net.Conn // -client raw
	br   *bufio.Reader
	wbuf []byte
}

// newClient makes a client whose requests are aborted when ctx ends (Ctrl-C).
func (b *bencher) newClient(ctx context.Context, seed uint64) *client {
	c := &client{b: b, ctx: ctx, rng: rand.New(rand.NewPCG(seed, 0x5eed)), u: b.base, q: make([]byte, 0, 64+len(b.value))}
	c.req = (&http.Request{Method: http.MethodGet, URL: &c.u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Host: b.base.Host}).WithContext(ctx)
	return c
}

// do sends one request for key and records its outcome. A Request may be
// reused once the previous response's body is closed (net/http docs).
func (c *client) do(kind string, key int) {
	c.q = c.q[:0]
	c.q = append(c.q, "key=k"...)
	c.q = strconv.AppendInt(c.q, int64(key), 10)
	path := "/get"
	switch kind {
	case "set":
		path = "/set"
		c.q = append(c.q, "&value="...)
		start := len(c.q)
		c.q = append(c.q, c.b.value...)
		c.seq++
		const hex = "0123456789abcdef"
		for i := 0; i < 8 && start+i < len(c.q); i++ {
			c.q[start+i] = hex[(c.seq>>(28-4*i))&0xf]
		}
	case "strong":
		c.q = append(c.q, "&consistency=strong"...)
	}
	t0 := time.Now()
	var code int
	var err error
	if c.b.cfg.raw {
		code, err = c.sendRaw(path)
	} else {
		code, err = c.send(path)
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
	if code != http.StatusOK {
		c.res.httpErrs++
		if c.res.firstErr == "" {
			c.res.firstErr = fmt.Sprintf("%s?%.40s: status %d", path, c.q, code)
		}
		return
	}
	c.res.ok++
	if kind == "set" {
		c.res.sets++
	}
}

// send is one request through net/http, reusing the client's Request:
// allowed once the previous response's body is closed (net/http docs).
func (c *client) send(path string) (int, error) {
	c.u.Path = path
	c.u.RawQuery = string(c.q)
	resp, err := c.b.client.Do(c.req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, nil
}

// sendRaw is one request over the client's own connection, written and
// read by this goroutine (-client raw). net/http's client hands every
// request to two goroutines per connection (its read and write loops); on a
// 2-core machine that costs the load generator about as much CPU per
// request as the server spends, which caps what a local run can show.
func (c *client) sendRaw(path string) (int, error) {
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
	w := append(c.wbuf[:0], "GET "...)
	w = append(w, path...)
	w = append(w, '?')
	w = append(w, c.q...)
	w = append(w, " HTTP/1.1\r\nHost: "...)
	w = append(w, c.b.base.Host...)
	w = append(w, "\r\n\r\n"...)
	c.wbuf = w
	code, keep, err := c.rawRoundTrip(w)
	if err != nil || !keep {
		c.conn.Close()
		c.conn = nil
	}
	return code, err
}

var errRawResponse = errors.New("-client raw: unexpected response framing (want HTTP/1.1 with Content-Length)")

func (c *client) rawRoundTrip(req []byte) (code int, keep bool, err error) {
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
	clients := make([]*client, w.clients)
	for i := range clients {
		clients[i] = b.newClient(ctx, uint64(i)+1000)
	}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(b.cfg.duration)
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
